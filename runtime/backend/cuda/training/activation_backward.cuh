// Backward of the MLP activations on the device, as runtime/training/
// activation_grad.h defines them; every tensor in one float dtype, math in
// float32 with one rounding on store.
#pragma once

#include <cuda_runtime_api.h>

#include "runtime/core/tensor.h"

namespace baton::cuda {

// x: gelu_new's input; dy, dx the same shape. dx is overwritten and may
// alias dy.
void LaunchGeluNewBackward(const Tensor& x, const Tensor& dy, Tensor& dx, cudaStream_t stream);
// gate_up [N, 2F] (SwiGlu's input), dout [N, F]; dgate_up [N, 2F] is
// overwritten (it may alias gate_up: each element is read before written).
void LaunchSwiGluBackward(const Tensor& gate_up, const Tensor& dout, Tensor& dgate_up, cudaStream_t stream);

}  // namespace baton::cuda
