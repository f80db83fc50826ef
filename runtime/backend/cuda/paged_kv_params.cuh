// The parameter fields that every paged-attention kernel (the general one,
// decode-only and flash prefill) takes from the same tensors, filled in one
// place so the three stay in step.
#pragma once

#include <cstdint>

#include "runtime/backend/backend.h"

namespace baton::cuda {

template <typename Params>
void FillPagedKvParams(Params& p, const Tensor& qkv, const Tensor& cache_k, const Tensor& cache_v,
                       const PagedAttentionBatch& batch, const AttentionShape& shape) {
  p.qkv = qkv.raw();
  p.width = qkv.dim(1);
  p.k_cache = cache_k.raw();
  p.v_cache = cache_v.raw();
  p.query_start = batch.query_start.data<int32_t>();
  p.context_len = batch.context_len.data<int32_t>();
  p.block_tables = batch.block_tables.data<int32_t>();
  p.max_blocks = static_cast<int>(batch.block_tables.dim(1));
  p.num_heads = shape.num_heads;
  p.group = shape.num_heads / shape.num_kv_heads;
  p.block_size = shape.block_size;
  p.kv_cols = static_cast<int64_t>(shape.num_kv_heads) * shape.head_dim;
}

}  // namespace baton::cuda
