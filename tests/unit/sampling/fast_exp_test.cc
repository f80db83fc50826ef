#include "runtime/core/fast_exp.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

namespace baton {
namespace {

TEST(FastExp, WithinTwoUlpOfExpOnTheWholeRange) {
  // Every 997th float in [-87, 0] by bit pattern: ~1 million points spread
  // over all exponents.
  const uint32_t first = std::bit_cast<uint32_t>(-0.0f);
  const uint32_t last = std::bit_cast<uint32_t>(-87.0f);
  double worst_ulps = 0;
  float worst_x = 0;
  for (uint32_t bits = first; bits <= last; bits += 997) {
    const float x = std::bit_cast<float>(bits);
    const double exact = std::exp(static_cast<double>(x));
    const double ulp = std::ldexp(1.0, std::ilogb(exact) - 23);
    const double ulps = std::fabs(ExpNonPositive(x) - exact) / ulp;
    if (ulps > worst_ulps) {
      worst_ulps = ulps;
      worst_x = x;
    }
  }
  EXPECT_LE(worst_ulps, 2.0) << "at x = " << worst_x;
}

TEST(FastExp, SpecialValues) {
  EXPECT_EQ(ExpNonPositive(0.0f), 1.0f);
  EXPECT_EQ(ExpNonPositive(-0.0f), 1.0f);
  EXPECT_NEAR(ExpNonPositive(-1.0f), std::exp(-1.0f), 2e-7);
  EXPECT_EQ(ExpNonPositive(-88.0f), 0.0f);
  EXPECT_EQ(ExpNonPositive(-1e30f), 0.0f);
  EXPECT_EQ(ExpNonPositive(-std::numeric_limits<float>::infinity()), 0.0f);
  EXPECT_EQ(ExpNonPositive(std::numeric_limits<float>::quiet_NaN()), 0.0f);
  EXPECT_GT(ExpNonPositive(-87.0f), 0.0f);
}

}  // namespace
}  // namespace baton
