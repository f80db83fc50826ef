// y = x . w^T (+ bias) through cuBLAS, fp32 accumulation. A bias is first
// broadcast into y and the GEMM adds onto it (beta = 1), so it costs one
// write of y instead of a separate read-modify-write pass.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "runtime/core/tensor.h"

namespace baton::cuda {

// x [M, K], w [N, K], bias [N] or undefined, y [M, N], all one float dtype.
// With `allow_gemv`, products of a few 16-bit rows go to gemv.cuh instead.
// With `accumulate` (no bias), y += x . w^T: the GEMM adds onto y (beta = 1),
// a residual add without a pass of its own.
void RunLinear(cublasHandle_t handle, const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& y,
               bool allow_gemv, cudaStream_t stream, bool accumulate = false);

}  // namespace baton::cuda
