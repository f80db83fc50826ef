#include "runtime/core/dtype.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

namespace baton {
namespace {

// Independent reference: round a float to a format with `mant_bits` stored
// mantissa bits by exact double arithmetic (ties to even), then compare.
double RoundToBits(double x, int mant_bits, int min_exp) {
  if (x == 0 || std::isinf(x)) return x;
  int e;
  std::frexp(x, &e);  // x = f * 2^e, 0.5 <= |f| < 1
  int exp = std::max(e - 1, min_exp);
  double ulp = std::ldexp(1.0, exp - mant_bits);
  return std::nearbyint(x / ulp) * ulp;  // default rounding mode is ties-to-even
}

TEST(DType, Bf16RoundTripIsExactForRepresentableValues) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    float f = Bf16ToFloat(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(Bf16ToFloat(FloatToBf16(f))));
      continue;
    }
    EXPECT_EQ(FloatToBf16(f), h) << "bf16 bits " << h;
  }
}

TEST(DType, F16RoundTripIsExactForRepresentableValues) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    float f = F16ToFloat(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(F16ToFloat(FloatToF16(f))));
      continue;
    }
    EXPECT_EQ(FloatToF16(f), h) << "f16 bits " << h;
  }
}

TEST(DType, RoundsToNearestEvenAgainstExactArithmetic) {
  uint32_t state = 12345;
  for (int i = 0; i < 200000; ++i) {
    state = state * 1664525u + 1013904223u;
    uint32_t bits = state;
    float f;
    std::memcpy(&f, &bits, 4);
    if (!std::isfinite(f)) continue;
    double bf = RoundToBits(f, 7, -126);
    if (std::fabs(bf) < std::ldexp(1.0, 128)) {
      EXPECT_EQ(static_cast<double>(Bf16ToFloat(FloatToBf16(f))), bf) << f;
    }
    // F16 range: scale into it so subnormals and normals both get exercised.
    int unused_exp;
    float g = std::ldexp(std::frexp(f, &unused_exp), static_cast<int>(state % 40) - 26);
    double hf = RoundToBits(g, 10, -14);
    if (std::fabs(hf) < 65504.0) {
      EXPECT_EQ(static_cast<double>(F16ToFloat(FloatToF16(g))), hf) << g;
    }
  }
}

TEST(DType, TiesGoToEven) {
  // 1 + 2^-8 is exactly halfway between bf16 1.0 and 1.0078125: rounds to 1.0.
  EXPECT_EQ(Bf16ToFloat(FloatToBf16(1.0f + std::ldexp(1.0f, -8))), 1.0f);
  // 1 + 3*2^-8 is halfway between 1.0078125 (odd) and 1.015625 (even).
  EXPECT_EQ(Bf16ToFloat(FloatToBf16(1.0f + 3 * std::ldexp(1.0f, -8))), 1.015625f);
  EXPECT_EQ(F16ToFloat(FloatToF16(65520.0f)), std::numeric_limits<float>::infinity());
  EXPECT_EQ(F16ToFloat(FloatToF16(std::ldexp(1.0f, -25))), 0.0f);
  EXPECT_EQ(F16ToFloat(FloatToF16(std::ldexp(1.5f, -25))), std::ldexp(1.0f, -24));
}

TEST(DType, ParsesSafetensorsNamesAndRejectsUnknown) {
  EXPECT_EQ(*ParseDType("BF16"), DType::kBF16);
  EXPECT_EQ(*ParseDType("F32"), DType::kF32);
  auto bad = ParseDType("F8_E4M3");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("F8_E4M3"), std::string::npos);
  EXPECT_EQ(DTypeBytes(DType::kI4, 3), 2u);
}

}  // namespace
}  // namespace baton
