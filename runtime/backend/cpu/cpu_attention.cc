// Paged attention on the CPU: K/V live in fixed-size blocks addressed through
// each sequence's block table, so a ragged batch of prefills and decodes runs
// in one call with no padding. One query row (all heads) per OpenMP task.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "runtime/backend/cpu/cpu_backend.h"
#include "runtime/core/fast_exp.h"

namespace baton {
namespace {

// Calls visit(first, last, slot) for each run of positions [first, last)
// of [begin, end) that sit in one cache block, slot being where `first`
// lives: one division a block instead of one a key.
template <typename Visit>
inline void ForEachBlockRun(const int32_t* block_table, int block_size, int begin, int end, Visit visit) {
  for (int first = begin; first < end;) {
    const int block = first / block_size;
    const int last = std::min(end, (block + 1) * block_size);
    visit(first, last, static_cast<int64_t>(block_table[block]) * block_size + first % block_size);
    first = last;
  }
}

// q . k over one head. Eight running sums, one per lane: a single sum is a
// chain of dependent adds that the compiler may not reorder into vectors.
inline float HeadDot(const float* q, const float* k, int d) {
  float lanes[8] = {};
  int c = 0;
  for (; c + 8 <= d; c += 8) {
    for (int l = 0; l < 8; ++l) lanes[l] += q[c + l] * k[c + l];
  }
  float sum = 0;
  for (; c < d; ++c) sum += q[c] * k[c];
  for (float lane : lanes) sum += lane;
  return sum;
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

  // One task per query row, all heads at once: a key or value row of the
  // cache (every head's slice of one token) is then read whole and in
  // order, where a task per head read 256-byte pieces 3 KB apart (GPT-2).
  const int64_t rows = qkv.dim(0);
  std::vector<int> seq_of_row(rows);
  for (int s = 0; s < batch.num_seqs; ++s) {
    for (int r = query_start[s]; r < query_start[s + 1]; ++r) seq_of_row[r] = s;
  }
  const int heads = shape.num_heads;
#pragma omp parallel
  {
    // This thread's scratch, reused across its rows.
    std::vector<float> scores;  // [heads, pos + 1]
    std::vector<float> max_score(heads), inv_denom(heads);
#pragma omp for schedule(dynamic, 4)
    for (int64_t row = 0; row < rows; ++row) {
      const int s = seq_of_row[row];
      const int32_t* table = batch.block_tables.data<int32_t>() + s * max_blocks;
      const int pos = context_len[s] - (query_start[s + 1] - query_start[s]) + static_cast<int>(row - query_start[s]);
      const int k_begin = shape.sliding_window > 0 ? std::max(0, pos - shape.sliding_window + 1) : 0;
      const int span = pos + 1;
      scores.resize(static_cast<size_t>(heads) * span);
      const float* q = qkv.data<float>() + row * width;
      std::fill(max_score.begin(), max_score.end(), -INFINITY);
      ForEachBlockRun(table, shape.block_size, k_begin, span, [&](int first, int last, int64_t slot) {
        const float* k = k_cache + slot * kv_cols;
        for (int j = first; j < last; ++j, k += kv_cols) {
          for (int h = 0; h < heads; ++h) {
            const float score = HeadDot(q + static_cast<int64_t>(h) * d, k + static_cast<int64_t>(h / group) * d, d);
            scores[static_cast<size_t>(h) * span + j] = score * shape.scale;
            max_score[h] = std::max(max_score[h], score * shape.scale);
          }
        }
      });
      for (int h = 0; h < heads; ++h) {
        float* p = scores.data() + static_cast<size_t>(h) * span;
        for (int j = k_begin; j < span; ++j) p[j] = ExpNonPositive(p[j] - max_score[h]);
        float denom = 0;
        for (int j = k_begin; j < span; ++j) denom += p[j];
        inv_denom[h] = 1.0f / denom;
      }
      float* o = out.data<float>() + row * out_cols;
      std::fill(o, o + out_cols, 0.0f);
      ForEachBlockRun(table, shape.block_size, k_begin, span, [&](int first, int last, int64_t slot) {
        const float* v = v_cache + slot * kv_cols;
        for (int j = first; j < last; ++j, v += kv_cols) {
          for (int h = 0; h < heads; ++h) {
            const float p = scores[static_cast<size_t>(h) * span + j] * inv_denom[h];
            const float* vh = v + static_cast<int64_t>(h / group) * d;
            float* oh = o + static_cast<int64_t>(h) * d;
            for (int c = 0; c < d; ++c) oh[c] += p * vh[c];
          }
        }
      });
    }
  }
}

}  // namespace baton
