// Every non-attention op against CpuBackend on random inputs of several
// shapes, in each storage dtype, with outputs poisoned before the run.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "tests/gpu/gpu_test_util.h"

namespace baton::testing {
namespace {

class CudaOps : public ::testing::TestWithParam<DType> {};

TEST_P(CudaOps, EmbeddingAndAddEmbedding) {
  const DType dtype = GetParam();
  BATON_GPU_OR_SKIP(gpu, dtype);
  std::mt19937 rng(11);
  for (int64_t hidden : {64, 2051}) {
    const int vocab = 997;
    std::vector<int32_t> ids = {0, vocab - 1, 5, 5, 300, 996, 1, 42, 0};
    const int64_t n = static_cast<int64_t>(ids.size());
    Tensor table = RandomHost(rng, {vocab, hidden}, dtype);
    Tensor host_ids = HostI32(ids, {n});
    Tensor ref = Tensor::Empty({n, hidden}, DType::kF32);
    Cpu().Embedding(host_ids, table, ref);
    Tensor dev_table = gpu->Upload(table, dtype);
    Tensor dev_ids = gpu->Upload(host_ids, DType::kI32);
    Tensor out = Poisoned(*gpu, {n, hidden}, dtype);
    gpu->Embedding(dev_ids, dev_table, out);
    const ErrorReport r = Compare(gpu->ToHostF32(out), ref);
    EXPECT_EQ(r.rel, 0.0) << "a lookup is a copy: " << r.ToString();
    EXPECT_EQ(r.non_finite, 0);

    Tensor x = RandomHost(rng, {n, hidden}, dtype);
    Tensor dev_x = gpu->Upload(x, dtype);
    Cpu().AddEmbedding(host_ids, table, x);
    gpu->AddEmbedding(dev_ids, dev_table, dev_x);
    BATON_EXPECT_CLOSE(gpu->ToHostF32(dev_x), x, dtype, "AddEmbedding hidden=" + std::to_string(hidden));
  }
}

TEST_P(CudaOps, Linear) {
  const DType dtype = GetParam();
  BATON_GPU_OR_SKIP(gpu, dtype);
  std::mt19937 rng(12);
  struct Case {
    int64_t m, k, n;
    bool bias;
  };
  // Up to 4 rows with K a multiple of 8 take gemv.cu in BF16/F16: whole
  // rounds of in-flight loads (2048), a remainder after them (4104), only
  // the remainder (8), and 2, 3, 4 rows with a bias.
  for (const Case& c :
       {Case{1, 64, 64, false}, Case{1, 2048, 8192, false}, Case{7, 129, 33, true}, Case{16, 512, 1024, true},
        Case{128, 2048, 256, false}, Case{300, 768, 2304, true}, Case{5, 4096, 4096, false},
        Case{1, 4104, 129, true}, Case{2, 520, 300, true}, Case{3, 8, 50, true}, Case{4, 8192, 2048, true}}) {
    Tensor x = RandomHost(rng, {c.m, c.k}, dtype);
    Tensor w = RandomHost(rng, {c.n, c.k}, dtype, -0.05f, 0.05f);
    Tensor bias = c.bias ? RandomHost(rng, {c.n}, dtype) : Tensor();
    Tensor ref = Tensor::Empty({c.m, c.n}, DType::kF32);
    Cpu().Linear(x, w, bias, ref);
    Tensor out = Poisoned(*gpu, {c.m, c.n}, dtype);
    gpu->Linear(gpu->Upload(x, dtype), gpu->Upload(w, dtype), c.bias ? gpu->Upload(bias, dtype) : Tensor(), out);
    BATON_EXPECT_CLOSE(gpu->ToHostF32(out), ref, dtype,
                       "Linear M=" + std::to_string(c.m) + " K=" + std::to_string(c.k) + " N=" + std::to_string(c.n) +
                           (c.bias ? " +bias" : ""));
  }
}

TEST_P(CudaOps, LayerNormAndRmsNorm) {
  const DType dtype = GetParam();
  BATON_GPU_OR_SKIP(gpu, dtype);
  std::mt19937 rng(13);
  for (int64_t rows : {1, 17}) {
    for (int64_t h : {64, 768, 4096, 4099, 8192}) {  // 16-byte vector kernel up to 8192 (16-bit), scalar else
      // An offset mean checks that the variance is taken about the mean.
      Tensor x = RandomHost(rng, {rows, h}, dtype, 2.0f, 5.0f);
      Tensor w = RandomHost(rng, {h}, dtype, 0.5f, 1.5f);
      Tensor b = RandomHost(rng, {h}, dtype);
      const std::string shape = " [" + std::to_string(rows) + ", " + std::to_string(h) + "]";
      Tensor dx = gpu->Upload(x, dtype), dw = gpu->Upload(w, dtype), db = gpu->Upload(b, dtype);
      for (bool with_bias : {true, false}) {
        Tensor ref = Tensor::Empty({rows, h}, DType::kF32);
        Cpu().LayerNorm(x, w, with_bias ? b : Tensor(), 1e-5f, ref);
        Tensor out = Poisoned(*gpu, {rows, h}, dtype);
        gpu->LayerNorm(dx, dw, with_bias ? db : Tensor(), 1e-5f, out);
        BATON_EXPECT_CLOSE(gpu->ToHostF32(out), ref, dtype, std::string("LayerNorm") + (with_bias ? "+b" : "") + shape);
      }
      Tensor ref = Tensor::Empty({rows, h}, DType::kF32);
      Cpu().RmsNorm(x, w, 1e-6f, ref);
      Tensor out = Poisoned(*gpu, {rows, h}, dtype);
      gpu->RmsNorm(dx, dw, 1e-6f, out);
      BATON_EXPECT_CLOSE(gpu->ToHostF32(out), ref, dtype, "RmsNorm" + shape);
    }
  }
}

TEST_P(CudaOps, AddInPlaceGeluNewSwiGlu) {
  const DType dtype = GetParam();
  BATON_GPU_OR_SKIP(gpu, dtype);
  std::mt19937 rng(14);
  for (int64_t n : {1, 33}) {
    for (int64_t f : {64, 1000, 1001, 5632}) {  // 1001: not whole 16-byte packs
      const std::string shape = " [" + std::to_string(n) + ", " + std::to_string(f) + "]";
      Tensor x = RandomHost(rng, {n, f}, dtype, -4.0f, 4.0f);
      Tensor y = RandomHost(rng, {n, f}, dtype, -4.0f, 4.0f);
      Tensor dx = gpu->Upload(x, dtype);
      gpu->AddInPlace(dx, gpu->Upload(y, dtype));
      Cpu().AddInPlace(x, y);
      BATON_EXPECT_CLOSE(gpu->ToHostF32(dx), x, dtype, "AddInPlace" + shape);

      Tensor g = RandomHost(rng, {n, f}, dtype, -6.0f, 6.0f);
      Tensor dg = gpu->Upload(g, dtype);
      gpu->GeluNew(dg);
      Cpu().GeluNew(g);
      BATON_EXPECT_CLOSE(gpu->ToHostF32(dg), g, dtype, "GeluNew" + shape);

      Tensor gate_up = RandomHost(rng, {n, 2 * f}, dtype, -6.0f, 6.0f);
      Tensor ref = Tensor::Empty({n, f}, DType::kF32);
      Cpu().SwiGlu(gate_up, ref);
      Tensor out = Poisoned(*gpu, {n, f}, dtype);
      gpu->SwiGlu(gpu->Upload(gate_up, dtype), out);
      BATON_EXPECT_CLOSE(gpu->ToHostF32(out), ref, dtype, "SwiGlu" + shape);
    }
  }
}

TEST_P(CudaOps, RopeRotatesOnlyQAndKColumns) {
  const DType dtype = GetParam();
  BATON_GPU_OR_SKIP(gpu, dtype);
  std::mt19937 rng(15);
  struct Case {
    int heads, kv_heads, head_dim;
    int64_t n;
  };
  for (const Case& c : {Case{4, 2, 64, 9}, Case{32, 8, 128, 40}, Case{12, 12, 64, 3}, Case{2, 1, 16, 5}}) {
    const int64_t q_k_cols = static_cast<int64_t>(c.heads + c.kv_heads) * c.head_dim;
    const int64_t width = q_k_cols + static_cast<int64_t>(c.kv_heads) * c.head_dim;  // fused qkv
    Tensor qkv = RandomHost(rng, {c.n, width}, dtype);
    std::vector<int32_t> pos(c.n);
    std::uniform_int_distribution<int32_t> pos_dist(0, 8191);
    for (auto& p : pos) p = pos_dist(rng);
    pos[0] = 0;
    Tensor inv_freq = Tensor::Empty({c.head_dim / 2}, DType::kF32);
    for (int j = 0; j < c.head_dim / 2; ++j) {
      inv_freq.data<float>()[j] = 1.0f / std::pow(500000.0f, 2.0f * j / c.head_dim);
    }
    Tensor positions = HostI32(pos, {c.n});
    Tensor dqkv = gpu->Upload(qkv, dtype);
    gpu->Rope(dqkv, gpu->Upload(positions, DType::kI32), gpu->Upload(inv_freq, DType::kF32), c.heads, c.kv_heads,
              c.head_dim);
    Tensor before = qkv.Clone();
    Cpu().Rope(qkv, positions, inv_freq, c.heads, c.kv_heads, c.head_dim);
    Tensor got = gpu->ToHostF32(dqkv);
    BATON_EXPECT_CLOSE(got, qkv, dtype, "Rope D=" + std::to_string(c.head_dim) + " H=" + std::to_string(c.heads));
    int64_t v_changed = 0;
    for (int64_t i = 0; i < c.n; ++i) {
      for (int64_t j = q_k_cols; j < width; ++j) {
        v_changed += got.data<float>()[i * width + j] != before.data<float>()[i * width + j];
      }
    }
    EXPECT_EQ(v_changed, 0) << "the v columns must stay untouched";
  }
}

TEST_P(CudaOps, GatherRows) {
  const DType dtype = GetParam();
  BATON_GPU_OR_SKIP(gpu, dtype);
  std::mt19937 rng(16);
  Tensor x = RandomHost(rng, {50, 777}, dtype);
  Tensor rows = HostI32({49, 0, 7, 7, 23}, {5});
  Tensor ref = Tensor::Empty({5, 777}, DType::kF32);
  Cpu().GatherRows(x, rows, ref);
  Tensor out = Poisoned(*gpu, {5, 777}, dtype);
  gpu->GatherRows(gpu->Upload(x, dtype), gpu->Upload(rows, DType::kI32), out);
  const ErrorReport r = Compare(gpu->ToHostF32(out), ref);
  EXPECT_EQ(r.rel, 0.0) << r.ToString();
  EXPECT_EQ(r.non_finite, 0);
}

INSTANTIATE_TEST_SUITE_P(AllFloat, CudaOps, ::testing::ValuesIn(TestedDTypes()), DTypeParamName);

}  // namespace
}  // namespace baton::testing
