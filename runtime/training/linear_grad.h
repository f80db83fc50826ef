// Backward of Backend::Linear (y = x . w^T + b) on float32 host tensors.
//
// Training ops live here rather than on the Backend seam: the CUDA backend
// (maintained separately) would otherwise have to grow pure virtuals it does
// not implement yet. These are the CPU reference; a GPU training path adds
// its own versions of the same functions. Weight gradients ACCUMULATE (+=),
// so micro-batches of one optimizer step add into the same buffers.
#pragma once

#include "runtime/core/tensor.h"

namespace baton {

// x [M, K], w [N, K], dy [M, N]. dx [M, K] is overwritten (skipped when
// undefined); dw [N, K] and db [N] (skipped when undefined) accumulate.
void LinearBackward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx, Tensor& dw, Tensor* db);

}  // namespace baton
