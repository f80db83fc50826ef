// Decode attention (every sequence has at most one new token), GQA-aware:
// a block takes one (sequence, kv head, split of the keys) and all `group`
// query heads that share that kv head, so each K/V row is read from memory
// once per group (not once per query head). K/V tiles of 32 keys are
// gathered through the block table with 16-byte loads, all of a tile's
// loads in flight at once, into shared memory; a warp per query head then
// scores the tile (lane per key) and folds it into its online softmax.
// Splits (flash-decoding) are sized to fill the GPU even at batch 1; each
// writes a partial (max, sum, weighted V) and the last split of a
// (sequence, kv head) to finish, found with an atomic ticket, merges them in
// the same kernel, so a decode layer's attention is one launch.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "runtime/backend/backend.h"

namespace baton::cuda {

struct DecodeAttentionPlan {
  int num_splits = 1;
  int keys_per_split = 0;
  int64_t workspace_floats = 0;  // partials, when num_splits > 1
  int64_t counters = 0;          // int tickets, zero between calls, when num_splits > 1
};

// Whether this kernel takes the batch: max_query_len <= 1, 16-byte aligned
// K/V rows, head_dim 64 or 128, at most 8 query heads per kv head.
bool DecodeAttentionSupported(const Tensor& qkv, const Tensor& cache_k, const Tensor& cache_v,
                              const PagedAttentionBatch& batch, const AttentionShape& shape);

// Splits hold at least `min_keys_per_split` keys (rounded up to 16): more
// splits fill more SMs, fewer leave less to merge.
constexpr int kDefaultMinKeysPerSplit = 32;
DecodeAttentionPlan PlanDecodeAttention(int64_t num_tokens, const PagedAttentionBatch& batch,
                                        const AttentionShape& shape, int multiprocessors,
                                        int min_keys_per_split = kDefaultMinKeysPerSplit);

// RoPE and the new tokens' K/V store folded into the decode kernel
// (Backend::RopeAttention): q and the new k are rotated as they are read,
// and the new K (rotated) and V are written to the caches at
// batch.slot_mapping; qkv itself is left unrotated.
struct DecodeRope {
  Tensor positions;  // I32 [N]
  Tensor inv_freq;   // F32 [head_dim / 2]
  Tensor* cache_k;   // cache_k / cache_v again, to write through
  Tensor* cache_v;
};

// `workspace` holds plan.workspace_floats floats and `counters`
// plan.counters ints that are zero (and are left zero); both unused for
// one split. `rope`: null, or RoPE and the store folded in.
void LaunchDecodeAttention(const Tensor& qkv, const Tensor& cache_k, const Tensor& cache_v,
                           const PagedAttentionBatch& batch, const AttentionShape& shape,
                           const DecodeAttentionPlan& plan, float* workspace, int* counters, Tensor& out,
                           cudaStream_t stream, const DecodeRope* rope = nullptr);

}  // namespace baton::cuda
