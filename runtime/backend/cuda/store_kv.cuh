// Writes the new tokens' K and V (the qkv columns after the q columns) into
// the paged cache [num_blocks, block_size, num_kv_heads, head_dim].
#pragma once

#include <cuda_runtime_api.h>

#include "runtime/backend/backend.h"

namespace baton::cuda {

// A token whose slot is negative (padding) or past the cache is skipped.
void LaunchStoreKv(const Tensor& qkv, const PagedAttentionBatch& batch, const AttentionShape& shape, Tensor& cache_k,
                   Tensor& cache_v, cudaStream_t stream);

// The shape checks of LaunchStoreKv, shared with LaunchRopeStoreKv; `op`
// names the op in the error.
void CheckStoreKvArgs(const Tensor& qkv, const PagedAttentionBatch& batch, const AttentionShape& shape,
                      const Tensor& cache_k, const Tensor& cache_v, const char* op);

}  // namespace baton::cuda
