// Token (and learned position) embedding lookup: out[n, :] = table[ids[n], :],
// or x[n, :] += table[ids[n], :] when `accumulate`.
#pragma once

#include <cuda_runtime_api.h>

#include "runtime/core/tensor.h"

namespace baton::cuda {

// An id outside the table writes a NaN row: visible downstream, while the
// device cannot abort cleanly (callers validate ids before this).
void LaunchEmbedding(const Tensor& ids, const Tensor& table, Tensor& out, bool accumulate, cudaStream_t stream);

}  // namespace baton::cuda
