// Paged attention over a ragged batch of prefills and decodes: each new
// token's query attends causally (optionally within a sliding window) to its
// sequence's K/V, read through the block table. Online softmax, so no
// score matrix is ever stored. Long contexts with few queries are split
// along the keys (flash-decoding): each split writes a partial (max, sum,
// weighted V) to a float32 workspace and a second kernel merges them.
// With 16-bit storage and head_dim 64/128, sequences with more than
// kFlashMinQueryLen new tokens go to the tensor-core kernel of
// flash_prefill.cu instead, in the same call. Batches of decodes only
// (max_query_len <= 1) go to decode_attention.cu instead of this file
// (CudaBackend::PagedAttention picks; BATON_DECODE_ATTENTION=off keeps them here).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "runtime/backend/backend.h"

namespace baton::cuda {

struct AttentionPlan {
  int num_splits = 1;
  int keys_per_split = 0;        // multiple of 32
  int64_t workspace_floats = 0;  // needed when num_splits > 1
};

// How to split the keys of this batch: enough blocks to fill
// `multiprocessors`, never splits shorter than 128 keys.
AttentionPlan PlanPagedAttention(int64_t num_tokens, const PagedAttentionBatch& batch, const AttentionShape& shape,
                                 int multiprocessors);

// `workspace` holds plan.workspace_floats floats (unused for one split).
void LaunchPagedAttention(const Tensor& qkv, const Tensor& cache_k, const Tensor& cache_v,
                          const PagedAttentionBatch& batch, const AttentionShape& shape, const AttentionPlan& plan,
                          float* workspace, Tensor& out, cudaStream_t stream);

}  // namespace baton::cuda
