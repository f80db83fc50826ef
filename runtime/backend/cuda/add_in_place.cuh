// x += y, elementwise (residual connections): one pass, float32 add, one
// rounding on store.
#pragma once

#include <cuda_runtime_api.h>

#include "runtime/core/tensor.h"

namespace baton::cuda {

void LaunchAddInPlace(Tensor& x, const Tensor& y, cudaStream_t stream);

}  // namespace baton::cuda
