// Backward of the MLP activations (float32 host tensors).
#pragma once

#include "runtime/core/tensor.h"

namespace baton {

// x: gelu_new's input (pre-activation); dy, dx same shape. dx is overwritten
// (may alias dy).
void GeluNewBackward(const Tensor& x, const Tensor& dy, Tensor& dx);
// gate_up [N, 2F] (SwiGlu's input), dout [N, F]; dgate_up [N, 2F] overwritten.
void SwiGluBackward(const Tensor& gate_up, const Tensor& dout, Tensor& dgate_up);

}  // namespace baton
