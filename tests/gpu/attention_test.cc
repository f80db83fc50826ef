// StoreKv and PagedAttention against CpuBackend: ragged batches mixing
// prefill, chunked prefill and decode over shuffled cache blocks, GQA and
// MHA, head_dim 32..128, sliding windows, and long decodes that take the
// split-K (flash-decoding) path. In F16/BF16 with head_dim 64/128, the
// sequences with more than 8 new tokens take the tensor-core prefill kernel
// and the rest the warp kernel, both in one call; decode-only batches take
// the GQA decode kernel (decode_attention.cu), with split plans from the
// real maximum context and from a decode graph's larger context bucket;
// batches of prompts with nothing cached take the fused FlashAttention-2
// forward over qkv.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "tests/gpu/gpu_test_util.h"

namespace baton::testing {
namespace {

struct Seq {
  int q_len;  // new tokens this step
  int ctx;    // tokens in the cache after this step, the new ones last
};

struct Case {
  std::string name;
  int heads, kv_heads, head_dim, block_size, window;
  int context_bucket;  // > 0: max_context_len as a decode graph passes it (a bucket above the real maximum)
  std::vector<Seq> seqs;
};

// n decodes of contexts 1..~90: enough (sequence, kv head) blocks that
// nothing is split.
std::vector<Seq> ManyDecodes(int n) {
  std::vector<Seq> seqs;
  for (int i = 0; i < n; ++i) seqs.push_back({1, 1 + (i * 37) % 90});
  return seqs;
}

std::vector<Case> Cases() {
  return {
      {"mixed_d64_gqa2", 4, 2, 64, 16, 0, 0, {{37, 37}, {1, 100}, {20, 70}, {1, 1}, {0, 10}, {3, 19}}},
      {"mixed_d128_gqa4", 32, 8, 128, 16, 0, 0, {{1, 513}, {64, 64}, {5, 300}, {1, 17}}},
      {"window48_d128", 8, 2, 128, 16, 48, 0, {{100, 100}, {1, 700}, {30, 200}}},
      {"mha_d64", 6, 6, 64, 16, 0, 0, {{12, 40}, {1, 33}}},
      {"decode_split_d128", 32, 8, 128, 16, 0, 0, {{1, 3000}, {1, 1500}, {1, 257}}},
      {"chunked_prefill_d64", 8, 2, 64, 16, 0, 0, {{130, 400}, {65, 65}, {9, 1000}, {8, 20}, {1, 5}}},
      {"chunked_prefill_window100_d128", 16, 4, 128, 16, 100, 0, {{200, 333}, {1, 90}, {70, 70}}},
      {"decode_split_window1000", 32, 8, 128, 16, 1000, 0, {{1, 4097}}},
      {"decode_split_d64_gqa8", 64, 8, 64, 16, 0, 0, {{1, 2048}}},
      {"odd_head_dim80", 4, 1, 80, 16, 0, 0, {{9, 9}, {1, 50}}},
      {"d32_block32", 2, 1, 32, 32, 0, 0, {{3, 70}, {1, 64}}},
      {"prefill512_d128", 32, 8, 128, 16, 0, 0, {{512, 512}}},
      // Prompts with nothing cached (every query its whole context): in
      // F16/BF16 with head_dim 64/128 the backend attends over qkv with the
      // fused FlashAttention-2 forward instead of reading the cache.
      {"fresh_ragged_d64_gqa4", 16, 4, 64, 16, 0, 0, {{300, 300}, {17, 17}, {1, 1}, {129, 129}}},
      {"fresh_window48_d128", 8, 2, 128, 16, 48, 0, {{100, 100}, {260, 260}}},
      {"fresh_mha_d128", 4, 4, 128, 32, 0, 0, {{64, 64}, {65, 65}}},
      // Decode-only batches (max_query_len 1) take decode_attention.cu: one
      // block per (sequence, kv head, split), the last split merging.
      {"decode_b1_8b_shape", 32, 8, 128, 16, 0, 0, {{1, 130}}},
      {"decode_b1_bucket256", 32, 8, 128, 16, 0, 256, {{1, 150}}},
      {"decode_b1_bucket1024_short", 32, 8, 128, 16, 0, 1024, {{1, 40}}},
      {"decode_gqa7_d64", 14, 2, 64, 16, 0, 0, {{1, 1}, {1, 40}, {0, 10}, {1, 333}, {1, 17}}},
      {"decode_mha_d64_block32", 12, 12, 64, 32, 0, 0, {{1, 100}, {1, 64}, {1, 2}}},
      {"decode_window64_bucket512", 32, 8, 128, 16, 64, 512, {{1, 300}, {1, 20}}},
      {"decode_b1_ctx5000", 32, 8, 128, 16, 0, 0, {{1, 5000}}},
      {"decode_one_split_b140", 32, 8, 128, 16, 0, 0, ManyDecodes(140)},
  };
}

struct Built {
  AttentionShape shape;
  PagedAttentionBatch host;  // host tensors
  Tensor qkv, cache_k, cache_v;
  int64_t n = 0;
};

Built Build(const Case& c, DType dtype, std::mt19937& rng) {
  Built b;
  b.shape.num_heads = c.heads;
  b.shape.num_kv_heads = c.kv_heads;
  b.shape.head_dim = c.head_dim;
  b.shape.block_size = c.block_size;
  b.shape.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  b.shape.sliding_window = c.window;
  const int s = static_cast<int>(c.seqs.size());
  int total_blocks = 0, max_blocks = 1, max_q = 0, max_ctx = 0;
  for (const Seq& q : c.seqs) {
    const int blocks = (q.ctx + c.block_size - 1) / c.block_size;
    total_blocks += blocks;
    max_blocks = std::max(max_blocks, blocks);
    max_q = std::max(max_q, q.q_len);
    max_ctx = std::max(max_ctx, q.ctx);
    b.n += q.q_len;
  }
  // Blocks handed out in shuffled order, with spares nobody owns.
  std::vector<int32_t> ids(total_blocks + 5);
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), rng);
  std::vector<int32_t> query_start = {0}, context_len, tables(static_cast<size_t>(s) * max_blocks, -1), slots;
  int next = 0;
  for (int i = 0; i < s; ++i) {
    const Seq& q = c.seqs[i];
    const int blocks = (q.ctx + c.block_size - 1) / c.block_size;
    for (int k = 0; k < blocks; ++k) tables[static_cast<size_t>(i) * max_blocks + k] = ids[next++];
    for (int t = 0; t < q.q_len; ++t) {
      const int pos = q.ctx - q.q_len + t;
      slots.push_back(tables[static_cast<size_t>(i) * max_blocks + pos / c.block_size] * c.block_size +
                      pos % c.block_size);
    }
    query_start.push_back(query_start.back() + q.q_len);
    context_len.push_back(q.ctx);
  }
  b.host.query_start = HostI32(query_start, {s + 1});
  b.host.context_len = HostI32(context_len, {s});
  b.host.block_tables = HostI32(tables, {s, max_blocks});
  b.host.slot_mapping = HostI32(slots, {b.n});
  b.host.num_seqs = s;
  b.host.max_query_len = max_q;
  b.host.max_context_len = c.context_bucket > 0 ? c.context_bucket : max_ctx;
  // As UploadStepPlan fills it.
  if (std::all_of(c.seqs.begin(), c.seqs.end(), [](const Seq& q) { return q.q_len == q.ctx; })) {
    b.host.fresh_query_start.assign(query_start.begin(), query_start.end());
  }
  const int64_t width = static_cast<int64_t>(c.heads + 2 * c.kv_heads) * c.head_dim;
  // q wider than k so the softmax is peaked in places, not uniform.
  b.qkv = RandomHost(rng, {b.n, width}, dtype, -2.0f, 2.0f);
  // Earlier tokens' K/V (and garbage in unused slots) are random.
  const Shape pool = {static_cast<int64_t>(ids.size()), c.block_size, c.kv_heads, c.head_dim};
  b.cache_k = RandomHost(rng, pool, dtype, -2.0f, 2.0f);
  b.cache_v = RandomHost(rng, pool, dtype);
  return b;
}

PagedAttentionBatch UploadBatch(CudaBackend& gpu, const PagedAttentionBatch& h) {
  PagedAttentionBatch d = h;
  d.query_start = gpu.Upload(h.query_start, DType::kI32);
  d.context_len = gpu.Upload(h.context_len, DType::kI32);
  d.block_tables = gpu.Upload(h.block_tables, DType::kI32);
  d.slot_mapping = gpu.Upload(h.slot_mapping, DType::kI32);
  return d;
}

class CudaAttention : public ::testing::TestWithParam<DType> {};

TEST_P(CudaAttention, StoreKvThenPagedAttentionMatchCpu) {
  const DType dtype = GetParam();
  BATON_GPU_OR_SKIP(gpu, dtype);
  std::mt19937 rng(21);
  for (const Case& c : Cases()) {
    SCOPED_TRACE(c.name);
    Built b = Build(c, dtype, rng);
    // GPU first: it reads the same host inputs before the CPU updates them.
    Tensor dqkv = gpu->Upload(b.qkv, dtype);
    Tensor dk = gpu->Upload(b.cache_k, dtype), dv = gpu->Upload(b.cache_v, dtype);
    PagedAttentionBatch dbatch = UploadBatch(*gpu, b.host);
    gpu->StoreKv(dqkv, dbatch, b.shape, dk, dv);
    Tensor out = Poisoned(*gpu, {b.n, static_cast<int64_t>(c.heads) * c.head_dim}, dtype);
    gpu->PagedAttention(dqkv, dk, dv, dbatch, b.shape, out);
    Tensor again = Poisoned(*gpu, out.shape(), dtype);
    gpu->PagedAttention(dqkv, dk, dv, dbatch, b.shape, again);

    Cpu().StoreKv(b.qkv, b.host, b.shape, b.cache_k, b.cache_v);
    Tensor ref = Tensor::Empty(out.shape(), DType::kF32);
    Cpu().PagedAttention(b.qkv, b.cache_k, b.cache_v, b.host, b.shape, ref);

    const ErrorReport kr = Compare(gpu->ToHostF32(dk), b.cache_k);
    const ErrorReport vr = Compare(gpu->ToHostF32(dv), b.cache_v);
    EXPECT_EQ(kr.rel, 0.0) << "StoreKv is a copy: " << kr.ToString();
    EXPECT_EQ(vr.rel, 0.0) << "StoreKv is a copy: " << vr.ToString();
    Tensor got = gpu->ToHostF32(out);
    BATON_EXPECT_CLOSE(got, ref, dtype, "PagedAttention " + c.name);
    Tensor got_again = gpu->ToHostF32(again);
    EXPECT_EQ(std::memcmp(got.raw(), got_again.raw(), got.nbytes()), 0) << "two runs differ: a race";
  }
}

// Backend::RopeAttention: on decode-only batches the GPU rotates q and the
// new k inside the decode kernel and writes the new K/V itself; otherwise
// it runs RopeStoreKv and PagedAttention. Against the CPU's two ops: the
// output and both caches (the new tokens' K rotated, V copied).
TEST_P(CudaAttention, RopeAttentionMatchesCpu) {
  const DType dtype = GetParam();
  BATON_GPU_OR_SKIP(gpu, dtype);
  std::mt19937 rng(22);
  for (const Case& c : Cases()) {
    if (c.head_dim % 2 != 0) continue;
    SCOPED_TRACE(c.name);
    Built b = Build(c, dtype, rng);
    std::vector<int32_t> pos;
    for (const Seq& q : c.seqs) {
      for (int t = 0; t < q.q_len; ++t) pos.push_back(q.ctx - q.q_len + t);
    }
    const Tensor positions = HostI32(pos, {b.n});
    Tensor inv_freq = Tensor::Empty({c.head_dim / 2}, DType::kF32);
    for (int j = 0; j < c.head_dim / 2; ++j) {
      inv_freq.data<float>()[j] = 1.0f / std::pow(10000.0f, 2.0f * j / c.head_dim);
    }
    Tensor dqkv = gpu->Upload(b.qkv, dtype);
    Tensor dk = gpu->Upload(b.cache_k, dtype), dv = gpu->Upload(b.cache_v, dtype);
    PagedAttentionBatch dbatch = UploadBatch(*gpu, b.host);
    Tensor out = Poisoned(*gpu, {b.n, static_cast<int64_t>(c.heads) * c.head_dim}, dtype);
    gpu->RopeAttention(dqkv, gpu->Upload(positions, DType::kI32), gpu->Upload(inv_freq, DType::kF32), dbatch, b.shape,
                       dk, dv, out);

    Tensor ref = Tensor::Empty(out.shape(), DType::kF32);
    Cpu().RopeAttention(b.qkv, positions, inv_freq, b.host, b.shape, b.cache_k, b.cache_v, ref);
    BATON_EXPECT_CLOSE(gpu->ToHostF32(out), ref, dtype, "RopeAttention " + c.name);
    BATON_EXPECT_CLOSE(gpu->ToHostF32(dk), b.cache_k, dtype, "RopeAttention cache k " + c.name);
    const ErrorReport vr = Compare(gpu->ToHostF32(dv), b.cache_v);
    EXPECT_EQ(vr.rel, 0.0) << "V is a copy: " << vr.ToString();
  }
}

INSTANTIATE_TEST_SUITE_P(AllFloat, CudaAttention, ::testing::ValuesIn(TestedDTypes()), DTypeParamName);

}  // namespace
}  // namespace baton::testing
