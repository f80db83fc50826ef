// Backward of Linear (y = x . w^T + b) on the device through cuBLAS, as
// runtime/training/linear_grad.h defines it. Activations and weights are in
// the compute dtype; the parameter gradients are float32 and ACCUMULATE:
// dw += dy^T . x is one GEMM with 16-bit (or F32) inputs, a float32 output
// and beta = 1, so no 16-bit copy of dw and no separate add pass.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "runtime/core/status.h"
#include "runtime/core/tensor.h"

namespace baton::cuda {

// x [M, K], w [N, K], dy [M, N] share one float dtype T. dx [M, K] in T is
// overwritten (skipped when null or undefined); dw F32 [N, K] and db F32 [N]
// (skipped when null or undefined) accumulate. Binds `handle` to `stream`.
// A broken shape contract aborts naming the op (as every launcher);
// a failing cuBLAS or CUDA call comes back as a Status.
Status RunLinearBackward(cublasHandle_t handle, const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx,
                         Tensor& dw, Tensor* db, cudaStream_t stream);

}  // namespace baton::cuda
