// Tensor-core prefill attention (FlashAttention-2 style) for 16-bit storage
// and head_dim 64 or 128: a block takes 64 queries of one (sequence, head),
// four warps of 16 rows each; K and V tiles of 64 keys are gathered through
// the block table into shared memory, S = QK^T and O += PV run on mma.sync
// (m16n8k16, fp32 accumulation) and the softmax is online, in registers.
// Sequences with few new tokens (decodes) are left to the warp kernel of
// paged_attention.cu, which splits long contexts instead.
#pragma once

#include <cuda_runtime_api.h>

#include "runtime/backend/backend.h"

namespace baton::cuda {

// Sequences with more new tokens than this take the tensor-core path.
constexpr int kFlashMinQueryLen = 8;

bool FlashPrefillSupported(DType dtype, int head_dim);

// Attention for every sequence whose query length exceeds
// kFlashMinQueryLen; other rows of `out` are left alone.
void LaunchFlashPrefill(const Tensor& qkv, const Tensor& cache_k, const Tensor& cache_v,
                        const PagedAttentionBatch& batch, const AttentionShape& shape, Tensor& out,
                        cudaStream_t stream);

}  // namespace baton::cuda
