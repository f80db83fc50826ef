// The arithmetic RoPE kernels share (rope.cu, and the decode attention
// kernels, which rotate q and the new k as they read them), so that every path
// rotates to the same bits: a token's angles float(position) * inv_freq[j]
// in float32 with full-precision sincosf (no fast math), as transformers
// computes them, and the rotate-half pair (j, j + half).
#pragma once

#include "runtime/backend/cuda/common.cuh"

namespace baton::cuda {

// cos_s[j], sin_s[j] (times sin_sign: -1 rotates backwards) for j < half,
// by the block's threads; the caller synchronizes before they are read.
__device__ __forceinline__ void FormRopeAngles(float position, const float* inv_freq, int half, float* cos_s,
                                               float* sin_s, float sin_sign = 1.0f) {
  for (int j = threadIdx.x; j < half; j += blockDim.x) {
    float s, c;
    sincosf(position * inv_freq[j], &s, &c);
    cos_s[j] = c;
    sin_s[j] = s * sin_sign;  // exact: a sign flip
  }
}

// The pair (lo, hi) = (x[j], x[j + half]) rotated by the angle with cosine
// c and sine s.
__device__ __forceinline__ float RotatedLow(float lo, float hi, float c, float s) { return lo * c - hi * s; }
__device__ __forceinline__ float RotatedHigh(float lo, float hi, float c, float s) { return hi * c + lo * s; }

// The two 16-byte chunks of a head row of kD elements that rotating chunk
// [d0, d0 + 16 bytes) reads: its own half's and the other half's.
struct RopePair {
  uint4 lo, hi;
};

template <typename T, int kD>
__device__ __forceinline__ RopePair LoadRopePair(const T* head, int d0) {
  constexpr int kPer = 16 / static_cast<int>(sizeof(T));
  constexpr int kHalf = kD / 2;
  static_assert(kHalf % kPer == 0, "a chunk must lie in one half of the head");
  const int j0 = d0 < kHalf ? d0 : d0 - kHalf;
  return {*reinterpret_cast<const uint4*>(head + j0), *reinterpret_cast<const uint4*>(head + j0 + kHalf)};
}

// Chunk [d0, d0 + 16 bytes) rotated (rotate-half) by the angles whose
// cosines and sines are in cos_s / sin_s (kD / 2 each), rounded to T.
template <typename T, int kD>
__device__ __forceinline__ uint4 RotatePair(const RopePair& pair, int d0, const float* cos_s, const float* sin_s) {
  constexpr int kPer = 16 / static_cast<int>(sizeof(T));
  constexpr int kHalf = kD / 2;
  const bool low = d0 < kHalf;
  const int j0 = low ? d0 : d0 - kHalf;
  const T* lo = reinterpret_cast<const T*>(&pair.lo);
  const T* hi = reinterpret_cast<const T*>(&pair.hi);
  uint4 out;
  T* o = reinterpret_cast<T*>(&out);
#pragma unroll
  for (int u = 0; u < kPer; ++u) {
    const float cs = cos_s[j0 + u], sn = sin_s[j0 + u];
    const float a = ToF(lo[u]), b = ToF(hi[u]);
    o[u] = FromF<T>(low ? RotatedLow(a, b, cs, sn) : RotatedHigh(a, b, cs, sn));
  }
  return out;
}

template <typename T, int kD>
__device__ __forceinline__ uint4 RotatedChunk(const T* head, int d0, const float* cos_s, const float* sin_s) {
  return RotatePair<T, kD>(LoadRopePair<T, kD>(head, d0), d0, cos_s, sin_s);
}

}  // namespace baton::cuda
