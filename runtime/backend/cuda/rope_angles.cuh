// The arithmetic RoPE kernels share (rope.cu, and decode_attention.cu,
// which rotates q and the new k as it reads them), so that every path
// rotates to the same bits: a token's angles float(position) * inv_freq[j]
// in float32 with full-precision sincosf (no fast math), as transformers
// computes them, and the rotate-half pair (j, j + half).
#pragma once

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

}  // namespace baton::cuda
