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

namespace {

// What every query row of one PagedAttention call reads.
struct AttentionInputs {
  const float* qkv;
  int64_t qkv_cols;
  const float* k_cache;
  const float* v_cache;
  int64_t kv_cols;
  const int32_t* block_tables;
  int64_t max_blocks;
  const int32_t* query_start;
  const int32_t* context_len;
  const int* seq_of_row;
  AttentionShape shape;
  float* out;
};

// A thread's scratch, reused across its rows.
struct RowScratch {
  std::vector<float> scores;  // [heads, pos + 1]
  std::vector<float> max_score, inv_denom;
};

// One query row, all heads at once: a key or value row of the cache (every
// head's slice of one token) is then read whole and in order, where a task
// per head read 256-byte pieces 3 KB apart (GPT-2).
inline void AttendRow(const AttentionInputs& in, RowScratch& scratch, int64_t row) {
  const AttentionShape& shape = in.shape;
  const int d = shape.head_dim, heads = shape.num_heads, group = shape.num_heads / shape.num_kv_heads;
  const int s = in.seq_of_row[row];
  const int32_t* table = in.block_tables + s * in.max_blocks;
  const int q_len = in.query_start[s + 1] - in.query_start[s];
  const int pos = in.context_len[s] - q_len + static_cast<int>(row - in.query_start[s]);
  const int k_begin = shape.sliding_window > 0 ? std::max(0, pos - shape.sliding_window + 1) : 0;
  const int span = pos + 1;
  std::vector<float>& scores = scratch.scores;
  scores.resize(static_cast<size_t>(heads) * span);
  scratch.max_score.assign(heads, -INFINITY);
  scratch.inv_denom.resize(heads);
  float* max_score = scratch.max_score.data();
  const float* q = in.qkv + row * in.qkv_cols;
  ForEachBlockRun(table, shape.block_size, k_begin, span, [&](int first, int last, int64_t slot) {
    const float* k = in.k_cache + slot * in.kv_cols;
    for (int j = first; j < last; ++j, k += in.kv_cols) {
      for (int h = 0; h < heads; ++h) {
        const float score =
            HeadDot(q + static_cast<int64_t>(h) * d, k + static_cast<int64_t>(h / group) * d, d) * shape.scale;
        scores[static_cast<size_t>(h) * span + j] = score;
        max_score[h] = std::max(max_score[h], score);
      }
    }
  });
  for (int h = 0; h < heads; ++h) {
    float* p = scores.data() + static_cast<size_t>(h) * span;
    for (int j = k_begin; j < span; ++j) p[j] = ExpNonPositive(p[j] - max_score[h]);
    float denom = 0;
    for (int j = k_begin; j < span; ++j) denom += p[j];
    scratch.inv_denom[h] = 1.0f / denom;
  }
  float* o = in.out + row * heads * d;
  std::fill(o, o + static_cast<int64_t>(heads) * d, 0.0f);
  ForEachBlockRun(table, shape.block_size, k_begin, span, [&](int first, int last, int64_t slot) {
    const float* v = in.v_cache + slot * in.kv_cols;
    for (int j = first; j < last; ++j, v += in.kv_cols) {
      for (int h = 0; h < heads; ++h) {
        const float p = scores[static_cast<size_t>(h) * span + j] * scratch.inv_denom[h];
        const float* vh = v + static_cast<int64_t>(h / group) * d;
        float* oh = o + static_cast<int64_t>(h) * d;
        for (int c = 0; c < d; ++c) oh[c] += p * vh[c];
      }
    }
  });
}

// The row twice over: `flatten` inlines everything AttendRow calls, so the
// AVX2 one's loops vectorize 8 wide where the project's x86-64-v2 build
// gets 4 (the attention was a tenth of GPT-2's CPU step).
__attribute__((target("avx2,fma"), flatten)) void AttendRowAvx2(const AttentionInputs& in, RowScratch& scratch,
                                                                 int64_t row) {
  AttendRow(in, scratch, row);
}
__attribute__((flatten)) void AttendRowPortable(const AttentionInputs& in, RowScratch& scratch, int64_t row) {
  AttendRow(in, scratch, row);
}

}  // namespace

void CpuBackend::PagedAttention(const Tensor& qkv, const Tensor& cache_k, const Tensor& cache_v,
                                const PagedAttentionBatch& batch, const AttentionShape& shape, Tensor& out) {
  const int64_t rows = qkv.dim(0);
  const int64_t out_cols = static_cast<int64_t>(shape.num_heads) * shape.head_dim;
  CpuCheck(out.dim(1) == out_cols && out.dim(0) == rows, "PagedAttention", "out must be [N, heads*head_dim]");
  const int32_t* query_start = batch.query_start.data<int32_t>();
  std::vector<int> seq_of_row(rows);
  for (int s = 0; s < batch.num_seqs; ++s) {
    for (int r = query_start[s]; r < query_start[s + 1]; ++r) seq_of_row[r] = s;
  }
  const AttentionInputs in{qkv.data<float>(),
                           qkv.dim(1),
                           cache_k.data<float>(),
                           cache_v.data<float>(),
                           static_cast<int64_t>(shape.num_kv_heads) * shape.head_dim,
                           batch.block_tables.data<int32_t>(),
                           batch.block_tables.dim(1),
                           query_start,
                           batch.context_len.data<int32_t>(),
                           seq_of_row.data(),
                           shape,
                           out.data<float>()};
  const auto attend = CpuHasAvx2Fma() ? AttendRowAvx2 : AttendRowPortable;
#pragma omp parallel
  {
    RowScratch scratch;
#pragma omp for schedule(dynamic, 4)
    for (int64_t row = 0; row < rows; ++row) attend(in, scratch, row);
  }
}

}  // namespace baton
