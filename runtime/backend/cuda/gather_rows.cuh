// out[r, :] = x[rows[r], :]: picks the rows whose logits are wanted.
#pragma once

#include <cuda_runtime_api.h>

#include "runtime/core/tensor.h"

namespace baton::cuda {

// A row index outside x writes a NaN row (see LaunchEmbedding).
void LaunchGatherRows(const Tensor& x, const Tensor& rows, Tensor& out, cudaStream_t stream);

}  // namespace baton::cuda
