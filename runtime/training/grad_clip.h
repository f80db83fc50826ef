// Global gradient-norm clipping as torch.nn.utils.clip_grad_norm_: the L2
// norm over all gradients together; when max_norm > 0 and the norm exceeds
// it, every gradient is scaled by max_norm / (norm + 1e-6).
#pragma once

#include <vector>

#include "runtime/core/tensor.h"

namespace baton {

// L2 norm of all gradients together (accumulated in double).
double GlobalGradNorm(const std::vector<Tensor>& grads);
// Returns the norm before clipping. max_norm <= 0 only measures.
double ClipGradNorm(std::vector<Tensor>& grads, double max_norm);
// The factor clipping multiplies every gradient by, for a global norm that
// was computed elsewhere (a sharded model sums its parts first): 1 when
// max_norm <= 0 or the norm is within it.
float ClipCoefficient(double norm, double max_norm);
void ScaleTensors(std::vector<Tensor>& tensors, float factor);

}  // namespace baton
