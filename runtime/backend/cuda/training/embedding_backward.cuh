// Backward of the embedding lookup on the device (runtime/training/
// embedding_grad.h): each row of dy is added into the float32 table
// gradient at the id it was read from; repeated ids sum.
#pragma once

#include <cuda_runtime_api.h>

#include "runtime/core/tensor.h"

namespace baton::cuda {

// ids I32 [N], dy [N, H] in a float dtype, dtable F32 [rows, H] accumulates.
// Rows of repeated ids meet through float32 atomics, so their order of
// addition (and its last-bit rounding) is not fixed. An id outside the table
// adds nothing: the device cannot abort cleanly, and the forward already
// turned that token's row into NaN (callers validate ids).
void LaunchEmbeddingBackward(const Tensor& ids, const Tensor& dy, Tensor& dtable, cudaStream_t stream);

}  // namespace baton::cuda
