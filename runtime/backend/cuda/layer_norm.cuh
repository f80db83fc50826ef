// LayerNorm over the last dimension: y = (x - mean) / sqrt(var + eps) *
// weight (+ bias).
#pragma once

#include <cuda_runtime_api.h>

#include "runtime/core/tensor.h"

namespace baton::cuda {

void LaunchLayerNorm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps, Tensor& y,
                     cudaStream_t stream);

}  // namespace baton::cuda
