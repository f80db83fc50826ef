// Paged attention on the CPU: K/V live in fixed-size blocks addressed through
// each sequence's block table, so a ragged batch of prefills and decodes runs
// in one call with no padding. One (sequence, head) pair per OpenMP task.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "runtime/backend/cpu/cpu_backend.h"

namespace baton {
namespace {

// Where token `pos` of sequence `seq` lives in the cache.
inline int64_t SlotOf(const int32_t* block_table, int block_size, int pos) {
  return static_cast<int64_t>(block_table[pos / block_size]) * block_size + pos % block_size;
}

}  // namespace

void CpuBackend::StoreKv(const Tensor& qkv, const PagedAttentionBatch& batch, const AttentionShape& shape,
                         Tensor& cache_k, Tensor& cache_v) {
  const int64_t n = qkv.dim(0), width = qkv.dim(1);
  const int64_t q_cols = static_cast<int64_t>(shape.num_heads) * shape.head_dim;
  const int64_t kv_cols = static_cast<int64_t>(shape.num_kv_heads) * shape.head_dim;
  CpuCheck(width >= q_cols + 2 * kv_cols, "StoreKv", "qkv too narrow");
  CpuCheck(batch.slot_mapping.numel() == n, "StoreKv", "one slot per token");
  const int64_t num_slots = cache_k.dim(0) * cache_k.dim(1);
  const int32_t* slots = batch.slot_mapping.data<int32_t>();
  for (int64_t i = 0; i < n; ++i) {
    CpuCheck(slots[i] >= 0 && slots[i] < num_slots, "StoreKv", "slot out of range");
    const float* row = qkv.data<float>() + i * width;
    std::memcpy(cache_k.data<float>() + slots[i] * kv_cols, row + q_cols, kv_cols * sizeof(float));
    std::memcpy(cache_v.data<float>() + slots[i] * kv_cols, row + q_cols + kv_cols, kv_cols * sizeof(float));
  }
}

void CpuBackend::PagedAttention(const Tensor& qkv, const Tensor& cache_k, const Tensor& cache_v,
                                const PagedAttentionBatch& batch, const AttentionShape& shape, Tensor& out) {
  const int64_t width = qkv.dim(1);
  const int d = shape.head_dim;
  const int64_t kv_cols = static_cast<int64_t>(shape.num_kv_heads) * d;
  const int64_t out_cols = static_cast<int64_t>(shape.num_heads) * d;
  const int group = shape.num_heads / shape.num_kv_heads;
  CpuCheck(out.dim(1) == out_cols && out.dim(0) == qkv.dim(0), "PagedAttention", "out must be [N, heads*head_dim]");
  const int32_t* query_start = batch.query_start.data<int32_t>();
  const int32_t* context_len = batch.context_len.data<int32_t>();
  const int64_t max_blocks = batch.block_tables.dim(1);
  const float* k_cache = cache_k.data<float>();
  const float* v_cache = cache_v.data<float>();

  const int64_t tasks = static_cast<int64_t>(batch.num_seqs) * shape.num_heads;
#pragma omp parallel for schedule(dynamic)
  for (int64_t task = 0; task < tasks; ++task) {
    const int s = static_cast<int>(task / shape.num_heads);
    const int h = static_cast<int>(task % shape.num_heads);
    const int kv_h = h / group;
    const int32_t* table = batch.block_tables.data<int32_t>() + s * max_blocks;
    const int q_begin = query_start[s], q_len = query_start[s + 1] - q_begin;
    const int ctx = context_len[s];
    const int first_pos = ctx - q_len;  // position of the first new token
    std::vector<float> scores(ctx);
    std::vector<float> acc(d);
    for (int i = 0; i < q_len; ++i) {
      const int pos = first_pos + i;
      const int k_begin = shape.sliding_window > 0 ? std::max(0, pos - shape.sliding_window + 1) : 0;
      const float* q = qkv.data<float>() + static_cast<int64_t>(q_begin + i) * width + static_cast<int64_t>(h) * d;
      float max_score = -INFINITY;
      for (int j = k_begin; j <= pos; ++j) {
        const float* k = k_cache + SlotOf(table, shape.block_size, j) * kv_cols + static_cast<int64_t>(kv_h) * d;
        float dot = 0;
        for (int c = 0; c < d; ++c) dot += q[c] * k[c];
        scores[j] = dot * shape.scale;
        max_score = std::max(max_score, scores[j]);
      }
      float denom = 0;
      for (int j = k_begin; j <= pos; ++j) {
        scores[j] = std::exp(scores[j] - max_score);
        denom += scores[j];
      }
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int j = k_begin; j <= pos; ++j) {
        const float* v = v_cache + SlotOf(table, shape.block_size, j) * kv_cols + static_cast<int64_t>(kv_h) * d;
        const float p = scores[j] / denom;
        for (int c = 0; c < d; ++c) acc[c] += p * v[c];
      }
      float* o = out.data<float>() + static_cast<int64_t>(q_begin + i) * out_cols + static_cast<int64_t>(h) * d;
      std::memcpy(o, acc.data(), d * sizeof(float));
    }
  }
}

}  // namespace baton
