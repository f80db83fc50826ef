// Backward of Backend::Rope. The rotation is orthogonal, so its gradient is
// the rotation by the opposite angle, applied to the q and k columns of
// dqkv in place (v's columns are untouched, as in the forward).
#pragma once

#include "runtime/core/tensor.h"

namespace baton {

void RopeBackward(Tensor& dqkv, const Tensor& positions, const Tensor& inv_freq, int num_heads, int num_kv_heads,
                  int head_dim);

}  // namespace baton
