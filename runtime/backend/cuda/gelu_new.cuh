// x = gelu_new(x) = 0.5x(1 + tanh(sqrt(2/pi)(x + 0.044715x^3))), in place,
// in float32 with one rounding on store.
#pragma once

#include <cuda_runtime_api.h>

#include "runtime/core/tensor.h"

namespace baton::cuda {

void LaunchGeluNew(Tensor& x, cudaStream_t stream);

}  // namespace baton::cuda
