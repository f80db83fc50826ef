// y = x . w^T (+ bias) for a few rows of x (decode: one row per sequence),
// 16-bit storage, fp32 accumulation. At M = 1 cuBLAS's kernels read a
// small weight matrix (the 1B shape's 8-67 MB projections) at 1.1-2.5 TB/s
// of the H100's ~3; this one streams each weight row once with 16-byte
// loads, several in flight a lane, and reaches copy speed from a few MB up.
#pragma once

#include <cuda_runtime_api.h>

#include "runtime/core/tensor.h"

namespace baton::cuda {

constexpr int64_t kGemvMaxRows = 4;

// Whether LaunchGemv takes this product: M <= kGemvMaxRows, BF16 or F16,
// K a multiple of 8 and x, w 16-byte aligned.
bool GemvApplies(const Tensor& x, const Tensor& w);

// x [M, K], w [N, K], bias [N] or undefined, y [M, N]; shapes checked by
// the caller (RunLinear).
void LaunchGemv(const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& y, cudaStream_t stream);

}  // namespace baton::cuda
