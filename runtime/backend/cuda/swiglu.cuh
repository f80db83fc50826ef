// out[n, i] = silu(gate_up[n, i]) * gate_up[n, F + i]: the gated MLP
// activation over a fused gate/up projection, in float32.
#pragma once

#include <cuda_runtime_api.h>

#include "runtime/core/tensor.h"

namespace baton::cuda {

void LaunchSwiGlu(const Tensor& gate_up, Tensor& out, cudaStream_t stream);

}  // namespace baton::cuda
