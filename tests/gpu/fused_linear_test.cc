// Backend::FusedLinear (a linear layer with its input norm and a store,
// SwiGLU or residual-add epilogue) and Backend::RopeStoreKv: the CPU's
// (the default, the separate ops) bit for bit against those ops, and the
// CUDA backend's against the CPU on random inputs, outputs poisoned first.
// At 1-4 rows in 16 bits the GPU runs the fused GEMV; more rows, F32 or a
// LayerNorm go through cuBLAS (a residual add as its beta = 1) or the ops.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>

#include "tests/gpu/gpu_test_util.h"

namespace baton::testing {
namespace {

struct NormChoice {
  bool normed;
  NormOp op;
  const char* name;
};
constexpr NormChoice kNormChoices[] = {
    {false, NormOp::kRmsNorm, "no norm"}, {true, NormOp::kRmsNorm, "RmsNorm"}, {true, NormOp::kLayerNorm, "LayerNorm"}};

struct EpilogueChoice {
  LinearEpilogue epilogue;
  const char* name;
};
constexpr EpilogueChoice kEpilogues[] = {{LinearEpilogue::kStore, "store"},
                                         {LinearEpilogue::kSwiGlu, "swiglu"},
                                         {LinearEpilogue::kAccumulate, "accumulate"}};

int64_t OutColumns(LinearEpilogue e, int64_t w_rows) { return e == LinearEpilogue::kSwiGlu ? w_rows / 2 : w_rows; }

// Inputs of one case, float32 host tensors rounded to `dtype`.
struct LinearInputs {
  Tensor x, w, bias, norm_w, norm_b, out;  // out: the residual for kAccumulate
};

LinearInputs MakeInputs(std::mt19937& rng, int64_t m, int64_t k, int64_t w_rows, LinearEpilogue e, DType dtype) {
  LinearInputs in;
  in.x = RandomHost(rng, {m, k}, dtype, -1.0f, 3.0f);  // an offset mean: LayerNorm must centre it
  in.w = RandomHost(rng, {w_rows, k}, dtype, -0.05f, 0.05f);
  in.bias = RandomHost(rng, {w_rows}, dtype, -0.5f, 0.5f);
  in.norm_w = RandomHost(rng, {k}, dtype, 0.5f, 1.5f);
  in.norm_b = RandomHost(rng, {k}, dtype, -0.2f, 0.2f);
  in.out = RandomHost(rng, {m, OutColumns(e, w_rows)}, dtype, -1.0f, 1.0f);
  return in;
}

LinearStep StepFor(const NormChoice& n, LinearEpilogue e, const Tensor& norm_w, const Tensor& norm_b) {
  LinearStep step;
  step.epilogue = e;
  if (n.normed) {
    step.norm = n.op;
    step.norm_weight = &norm_w;
    step.norm_bias = &norm_b;
    step.norm_eps = 1e-5f;
  }
  return step;
}

TEST(CpuFusedLinear, BitIdenticalToTheSeparateOps) {
  std::mt19937 rng(41);
  const int64_t m = 3, k = 96, w_rows = 64;
  for (const NormChoice& n : kNormChoices) {
    for (const EpilogueChoice& e : kEpilogues) {
      SCOPED_TRACE(std::string(n.name) + ", " + e.name);
      LinearInputs in = MakeInputs(rng, m, k, w_rows, e.epilogue, DType::kF32);
      Tensor normed = Tensor::Empty({m, k}, DType::kF32), staging = Tensor::Empty({m, w_rows}, DType::kF32);
      Tensor got = in.out.Clone();
      Cpu().FusedLinear(in.x, in.w, in.bias, StepFor(n, e.epilogue, in.norm_w, in.norm_b), normed, staging, got);

      Tensor in_ref = in.x;
      if (n.normed) {
        in_ref = Tensor::Empty({m, k}, DType::kF32);
        if (n.op == NormOp::kRmsNorm) {
          Cpu().RmsNorm(in.x, in.norm_w, 1e-5f, in_ref);
        } else {
          Cpu().LayerNorm(in.x, in.norm_w, in.norm_b, 1e-5f, in_ref);
        }
      }
      Tensor z = Tensor::Empty({m, w_rows}, DType::kF32), want = in.out.Clone();
      Cpu().Linear(in_ref, in.w, in.bias, z);
      if (e.epilogue == LinearEpilogue::kStore) want = z;
      if (e.epilogue == LinearEpilogue::kSwiGlu) Cpu().SwiGlu(z, want);
      if (e.epilogue == LinearEpilogue::kAccumulate) Cpu().AddInPlace(want, z);
      ASSERT_EQ(got.nbytes(), want.nbytes());
      EXPECT_EQ(std::memcmp(got.raw(), want.raw(), want.nbytes()), 0);
    }
  }
}

class CudaFusedLinear : public ::testing::TestWithParam<DType> {};

TEST_P(CudaFusedLinear, MatchesTheCpu) {
  const DType dtype = GetParam();
  BATON_GPU_OR_SKIP(gpu, dtype);
  std::mt19937 rng(42);
  struct Shape3 {
    int64_t m, k, w_rows;
  };
  // 1-4 rows: the GEMV (one K a single round, one several, one with a
  // partial last round); 9 rows: cuBLAS.
  for (const Shape3& s :
       {Shape3{1, 2048, 256}, Shape3{2, 520, 136}, Shape3{3, 4096, 64}, Shape3{4, 1024, 200}, Shape3{9, 512, 96}}) {
    for (const NormChoice& n : kNormChoices) {
      for (const EpilogueChoice& e : kEpilogues) {
        for (const bool with_bias : {false, true}) {
          const std::string what = std::string(n.name) + ", " + e.name + (with_bias ? " +bias" : "") +
                                   ", M=" + std::to_string(s.m) + " K=" + std::to_string(s.k) +
                                   " rows of w=" + std::to_string(s.w_rows);
          SCOPED_TRACE(what);
          LinearInputs in = MakeInputs(rng, s.m, s.k, s.w_rows, e.epilogue, dtype);
          const Tensor no_bias;
          const Tensor& bias = with_bias ? in.bias : no_bias;
          Tensor d_norm_w = gpu->Upload(in.norm_w, dtype), d_norm_b = gpu->Upload(in.norm_b, dtype);
          Tensor d_out = e.epilogue == LinearEpilogue::kAccumulate
                             ? gpu->Upload(in.out, dtype)
                             : Poisoned(*gpu, {s.m, OutColumns(e.epilogue, s.w_rows)}, dtype);
          Tensor d_normed = Poisoned(*gpu, {s.m, s.k}, dtype), d_staging = Poisoned(*gpu, {s.m, s.w_rows}, dtype);
          gpu->FusedLinear(gpu->Upload(in.x, dtype), gpu->Upload(in.w, dtype),
                           with_bias ? gpu->Upload(in.bias, dtype) : Tensor(),
                           StepFor(n, e.epilogue, d_norm_w, d_norm_b), d_normed, d_staging, d_out);

          Tensor normed = Tensor::Empty({s.m, s.k}, DType::kF32), staging = Tensor::Empty({s.m, s.w_rows}, DType::kF32);
          Tensor want = in.out.Clone();
          Cpu().FusedLinear(in.x, in.w, bias, StepFor(n, e.epilogue, in.norm_w, in.norm_b), normed, staging, want);
          BATON_EXPECT_CLOSE(gpu->ToHostF32(d_out), want, dtype, what);
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllFloat, CudaFusedLinear, ::testing::ValuesIn(TestedDTypes()), DTypeParamName);

class CudaRopeStoreKv : public ::testing::TestWithParam<DType> {};

// The rotated qkv and the whole cache (slots not written must keep what
// they held) against the CPU's Rope + StoreKv; one token's slot is the
// cache's last.
TEST_P(CudaRopeStoreKv, MatchesTheCpu) {
  const DType dtype = GetParam();
  BATON_GPU_OR_SKIP(gpu, dtype);
  std::mt19937 rng(43);
  struct Case {
    int heads, kv_heads, head_dim, extra_columns;  // extra: a row width off the 16-byte packs
  };
  for (const Case& c : {Case{32, 8, 64, 0}, Case{8, 2, 128, 0}, Case{4, 4, 64, 1}}) {
    const std::string what = "H=" + std::to_string(c.heads) + " KV=" + std::to_string(c.kv_heads) +
                             " D=" + std::to_string(c.head_dim) + (c.extra_columns ? " odd width" : "");
    SCOPED_TRACE(what);
    AttentionShape shape;
    shape.num_heads = c.heads;
    shape.num_kv_heads = c.kv_heads;
    shape.head_dim = c.head_dim;
    shape.block_size = 16;
    const int blocks = 6;
    const int64_t n = 5;
    const int64_t kv_cols = static_cast<int64_t>(c.kv_heads) * c.head_dim;
    const int64_t width = static_cast<int64_t>(c.heads) * c.head_dim + 2 * kv_cols + c.extra_columns;
    Tensor qkv = RandomHost(rng, {n, width}, dtype);
    Tensor cache_k = RandomHost(rng, {blocks, shape.block_size, c.kv_heads, c.head_dim}, dtype);
    Tensor cache_v = RandomHost(rng, {blocks, shape.block_size, c.kv_heads, c.head_dim}, dtype);
    Tensor positions = HostI32({0, 17, 5, 4095, 130}, {n});
    Tensor inv_freq = Tensor::Empty({c.head_dim / 2}, DType::kF32);
    for (int j = 0; j < c.head_dim / 2; ++j) {
      inv_freq.data<float>()[j] = 1.0f / std::pow(10000.0f, 2.0f * j / c.head_dim);
    }
    PagedAttentionBatch batch;
    batch.slot_mapping = HostI32({3, 17, 50, blocks * shape.block_size - 1, 40}, {n});

    Tensor dqkv = gpu->Upload(qkv, dtype), dk = gpu->Upload(cache_k, dtype), dv = gpu->Upload(cache_v, dtype);
    PagedAttentionBatch dbatch;
    dbatch.slot_mapping = gpu->Upload(batch.slot_mapping, DType::kI32);
    gpu->RopeStoreKv(dqkv, gpu->Upload(positions, DType::kI32), gpu->Upload(inv_freq, DType::kF32), dbatch, shape, dk,
                     dv);
    Cpu().RopeStoreKv(qkv, positions, inv_freq, batch, shape, cache_k, cache_v);
    BATON_EXPECT_CLOSE(gpu->ToHostF32(dqkv), qkv, dtype, what + " qkv");
    BATON_EXPECT_CLOSE(gpu->ToHostF32(dk), cache_k, dtype, what + " cache k");
    const Tensor got_v = gpu->ToHostF32(dv);
    ASSERT_EQ(got_v.nbytes(), cache_v.nbytes());
    EXPECT_EQ(std::memcmp(got_v.raw(), cache_v.raw(), cache_v.nbytes()), 0) << "V is copied, not computed";
  }
}

INSTANTIATE_TEST_SUITE_P(AllFloat, CudaRopeStoreKv, ::testing::ValuesIn(TestedDTypes()), DTypeParamName);

}  // namespace
}  // namespace baton::testing
