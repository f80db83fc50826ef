// The residual add fused with the norm that follows it (Backend::AddNorm):
// residual += x, then normed = LayerNorm or RmsNorm of the updated residual,
// in one pass: the row is read once (x and residual), the sum is rounded to
// the storage type and written back, and the statistics come from the
// rounded values held in registers. With RMSNorm the sums run in the same
// order as rms_norm.cu's, so the result is bit-identical to AddInPlace then
// RmsNorm; LayerNorm differs from layer_norm.cu's scalar kernel only in
// summation order. One block per row.
#pragma once

#include <cuda_runtime_api.h>

#include "runtime/backend/backend.h"

namespace baton::cuda {

void LaunchAddNorm(NormOp op, const Tensor& x, Tensor& residual, const Tensor& weight, const Tensor& bias, float eps,
                   Tensor& normed, cudaStream_t stream);

}  // namespace baton::cuda
