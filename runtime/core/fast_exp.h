// ExpNonPositive: e^x for softmax weights, exp(logit - max_logit), x <= 0.
//
// The sampler needs one exp per vocab entry per token, and the CPU's
// attention softmax and GELU one per score and activation; std::exp costs a
// few nanoseconds a call and never vectorizes, which made it most of the cost
// of sampling over a 128k vocab. This version has no branches and no float
// comparisons (those keep GCC from vectorizing under -ftrapping-math), so a
// loop over it vectorizes. Within 2 float ulp of e^x for x in [-87, 0];
// 0 for x below about -87.7 (weights < 1e-38 of the top token's), -inf and
// NaN. Positive x is read as -|x|: callers pass x <= 0.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>

namespace baton {

inline float ExpNonPositive(float x) {
  // Clamp |x| to 88 on the bit pattern: an integer min vectorizes where a
  // float one does not, and NaN (above +inf as bits) clamps too.
  constexpr uint32_t kMagnitudeMask = 0x7FFFFFFFu;
  constexpr uint32_t kBitsOf88 = 0x42B00000u;  // 88.0f
  const uint32_t magnitude = std::min(std::bit_cast<uint32_t>(x) & kMagnitudeMask, kBitsOf88);
  x = std::bit_cast<float>(magnitude | ~kMagnitudeMask);

  // e^x = 2^n * e^r with n = round(x / ln 2), |r| <= ln(2) / 2.
  constexpr float kLog2e = 1.44269504f;
  constexpr float kRoundToInteger = 12582912.0f;  // 1.5 * 2^23: the sum drops all fraction bits
  const float n = (x * kLog2e + kRoundToInteger) - kRoundToInteger;
  // ln 2 in two parts; n * kLn2High is exact, so r keeps its low bits.
  constexpr float kLn2High = 0.693359375f;
  constexpr float kLn2Low = -2.12194440e-4f;
  const float r = (x - n * kLn2High) - n * kLn2Low;

  // Taylor series to r^7: the first omitted term is below 2^-27 for |r| <= ln(2) / 2.
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;

  // 2^n built as a float's exponent field; n = -127 (x < ~-87.7) gives 0.
  const int32_t biased_exponent = std::max(static_cast<int32_t>(n) + 127, 0);
  return p * std::bit_cast<float>(static_cast<uint32_t>(biased_exponent) << 23);
}

}  // namespace baton
