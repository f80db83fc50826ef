// Causal self-attention for training: each sequence is a contiguous run of
// rows of qkv (no paged cache), and the forward keeps what backward needs.
//
// Only the per-row log-sum-exp of the scores is kept ([N, heads]), not the
// [T, T] probabilities: backward recomputes q.k and softmax from it
// (FlashAttention's trade of a little compute for O(T) memory per head).
// GQA (num_heads a multiple of num_kv_heads) and a sliding window are
// handled as in Backend::PagedAttention.
#pragma once

#include <vector>

#include "runtime/backend/backend.h"
#include "runtime/core/tensor.h"

namespace baton {

// seq_starts: S + 1 row offsets; sequence s is rows [seq_starts[s], seq_starts[s+1]),
// positions 0.. within it. qkv [N, q + 2 kv] after rope; out [N, q]; lse [N, heads].
void CausalAttentionForward(const Tensor& qkv, const std::vector<int>& seq_starts, const AttentionShape& shape,
                            Tensor& out, Tensor& lse);

// dout [N, q]; dqkv [N, q + 2 kv] is overwritten with the gradient of qkv.
void CausalAttentionBackward(const Tensor& qkv, const Tensor& out, const Tensor& lse, const Tensor& dout,
                             const std::vector<int>& seq_starts, const AttentionShape& shape, Tensor& dqkv);

}  // namespace baton
