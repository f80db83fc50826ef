// Fused causal attention for training (FlashAttention-2, Dao 2023) in BF16
// or F16 with head_dim 64 or 128: the same math and contract as
// causal_attention_train.cuh (which calls these for the dtypes and shapes
// FlashAttentionSupported accepts), without materialising scores.
//
// Forward: a CTA per (64 query rows, head, sequence) walks the key blocks
// up to its causal (and window) limit, S = Q K^T on tensor cores
// (mma.sync m16n8k16, fp32 accumulation), online softmax in registers, O
// accumulated in registers; it writes O (in T) and lse (F32, natural log of
// the sum of exp(scale q.k)). K/V tiles are double-buffered with cp.async.
// Backward: D_i = dO_i . O_i first (a small kernel), then a CTA per (64
// keys, kv head, sequence) walks the query blocks that see its keys, for
// every head of the kv group in turn (so dK and dV, summed over the group,
// stay in registers and are stored once, no atomics); dQ is accumulated
// with fp32 atomics into the workspace and converted into dqkv's q columns
// at the end. The atomics make dQ's last bits depend on the CTA order.
//
// Host-side: no synchronisation; callers have checked shapes and dtypes.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <vector>

#include "runtime/backend/backend.h"
#include "runtime/core/status.h"
#include "runtime/core/tensor.h"

namespace baton::cuda {

// True when the fused kernels handle this call: BF16/F16, head_dim 64 or
// 128, a positive scale, qkv rows a multiple of 8 elements and 16-byte
// aligned base pointers (the kernels copy 16 bytes at a time).
bool FlashAttentionSupported(const Tensor& qkv, const AttentionShape& shape);
// The same without tensors (sizing the workspace ahead of a call).
bool FlashAttentionSupported(DType dtype, const AttentionShape& shape);

// Backward workspace: F32 dQ [R, heads * head_dim] and D [R, heads], each
// rounded up to 256 bytes, R = seq_starts.back() - seq_starts.front(). The
// forward needs none.
size_t FlashAttentionWorkspaceBytes(const std::vector<int>& seq_starts, const AttentionShape& shape);

// qkv [N, W], out [N, q] (T), lse [N, heads] (F32) or null (not written),
// as RunCausalAttentionForward. The inference backend runs it too, for
// prefills whose keys are all in qkv (CudaBackend::PagedAttention).
Status RunFlashAttentionForward(const Tensor& qkv, const std::vector<int>& seq_starts, const AttentionShape& shape,
                                Tensor& out, Tensor* lse, cudaStream_t stream);

// Writes dqkv's q + 2 kv columns of the rows inside the sequences (the
// caller zeroes the rest). workspace: at least FlashAttentionWorkspaceBytes.
Status RunFlashAttentionBackward(const Tensor& qkv, const Tensor& out, const Tensor& lse, const Tensor& dout,
                                 const std::vector<int>& seq_starts, const AttentionShape& shape, Tensor& dqkv,
                                 Tensor& workspace, cudaStream_t stream);

}  // namespace baton::cuda
