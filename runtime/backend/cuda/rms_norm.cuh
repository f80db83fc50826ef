// RMSNorm over the last dimension: y = weight * (x / sqrt(mean(x^2) + eps)),
// as transformers' Llama.
#pragma once

#include <cuda_runtime_api.h>

#include "runtime/core/tensor.h"

namespace baton::cuda {

void LaunchRmsNorm(const Tensor& x, const Tensor& weight, float eps, Tensor& y, cudaStream_t stream);

}  // namespace baton::cuda
