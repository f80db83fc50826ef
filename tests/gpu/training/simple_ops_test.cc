// The simple training kernels (runtime/backend/cuda/training: norm,
// activation, rope, embedding and linear backward; the optimizer's
// elementwise kernels) against the CPU reference in runtime/training, on
// the same random inputs rounded to the compute dtype. Outputs that are
// overwritten are poisoned first; float32 gradient accumulators start from
// random values of the increment's size, so an op that overwrites instead of
// adding fails by a relative error of order one.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <iterator>
#include <string>
#include <vector>

#include "runtime/backend/cuda/rope.cuh"
#include "runtime/backend/cuda/training/activation_backward.cuh"
#include "runtime/backend/cuda/training/embedding_backward.cuh"
#include "runtime/backend/cuda/training/linear_backward.cuh"
#include "runtime/backend/cuda/training/norm_backward.cuh"
#include "runtime/backend/cuda/training/optimizer_kernels.cuh"
#include "runtime/training/activation_grad.h"
#include "runtime/training/adamw.h"
#include "runtime/training/embedding_grad.h"
#include "runtime/training/grad_clip.h"
#include "runtime/training/linear_grad.h"
#include "runtime/training/norm_grad.h"
#include "runtime/training/rope_grad.h"
#include "tests/gpu/gpu_test_util.h"

namespace baton::testing {
namespace {

// Float32 parameter gradients: the GPU sees the same (rounded) inputs as the
// CPU and accumulates in float32 in every mode, so only summation order and
// float32-vs-double statistics separate them.
constexpr double kGradTolerance = 2e-5;

std::string Dims(std::initializer_list<int64_t> dims) {
  std::string s;
  for (int64_t d : dims) {
    s += s.empty() ? "[" : ", ";
    s += std::to_string(d);
  }
  return s + "]";
}

// Compares a float32 device accumulator with the reference.
void ExpectGradClose(CudaBackend& gpu, const Tensor& dev, const Tensor& ref, const std::string& what) {
  const ErrorReport r = Compare(gpu.ToHostF32(dev), ref);
  std::printf("  [F32 grad %s] %s\n", what.c_str(), r.ToString().c_str());
  EXPECT_EQ(r.non_finite, 0) << what;
  EXPECT_EQ(r.mismatched_nan, 0) << what;
  EXPECT_LE(r.rel, kGradTolerance) << what;
}

class CudaTrainingSimpleOps : public ::testing::TestWithParam<DType> {};

TEST_P(CudaTrainingSimpleOps, NormBackward) {
  const DType dtype = GetParam();
  BATON_GPU_OR_SKIP(gpu, dtype);
  std::mt19937 rng(21);
  struct Case {
    int64_t rows, h;
  };
  // 1500 rows: several rows per block (the grid stops at 4 blocks an SM).
  // Widths in whole 16-byte packs (64, 256, 2048, 4096, 8192) take the
  // kernel that holds rows in registers, 1 to 4 packs a thread (8192 in F32
  // is too wide for it); the others the general kernel. 12289: staged
  // partials past 48 KiB (opt-in shared memory); 30001 with a bias: past
  // what shared memory holds, the per-element atomic fallback. (Not H = 1:
  // RMSNorm's dx is then g*w*rstd*eps/x^2, a cancellation that float32
  // statistics cannot resolve to 2e-5 and no model has.)
  const Case cases[] = {Case{1, 64},   Case{7, 777},    Case{300, 4099},  Case{1500, 256}, Case{3, 3},
                        Case{5, 12289}, Case{3, 30001}, Case{700, 2048}, Case{9, 4096},   Case{6, 8192}};
  for (size_t i = 0; i < std::size(cases); ++i) {
    const Case& c = cases[i];
    const std::string shape = Dims({c.rows, c.h});
    // dx aliasing dy (allowed) on every other case.
    const bool alias = i % 2 == 1;
    Tensor x = RandomHost(rng, {c.rows, c.h}, dtype, -1.0f, 3.0f);  // offset mean: centring matters
    Tensor w = RandomHost(rng, {c.h}, dtype, 0.5f, 1.5f);
    Tensor dy = RandomHost(rng, {c.rows, c.h}, dtype);
    const float scale = std::sqrt(static_cast<float>(c.rows));
    Tensor dw0 = RandomHost(rng, {c.h}, DType::kF32, -scale, scale);
    Tensor db0 = RandomHost(rng, {c.h}, DType::kF32, -scale, scale);
    const Tensor dev_x = gpu->Upload(x, dtype), dev_w = gpu->Upload(w, dtype);

    for (bool with_bias : {true, false}) {
      const std::string what =
          std::string("LayerNormBackward") + (with_bias ? "+db " : " ") + shape + (alias ? " dx=dy" : "");
      Tensor dx_ref = Tensor::Empty({c.rows, c.h}, DType::kF32);
      Tensor dw_ref = dw0.Clone(), db_ref = db0.Clone();
      LayerNormBackward(x, w, 1e-5f, dy, dx_ref, dw_ref, with_bias ? &db_ref : nullptr);
      Tensor dev_dy = gpu->Upload(dy, dtype);
      Tensor dev_dx = alias ? dev_dy : Poisoned(*gpu, {c.rows, c.h}, dtype);
      Tensor dev_dw = gpu->Upload(dw0, DType::kF32), dev_db = gpu->Upload(db0, DType::kF32);
      cuda::LaunchLayerNormBackward(dev_x, dev_w, 1e-5f, dev_dy, dev_dx, dev_dw, with_bias ? &dev_db : nullptr,
                                    gpu->stream());
      BATON_EXPECT_CLOSE(gpu->ToHostF32(dev_dx), dx_ref, dtype, what + " dx");
      ExpectGradClose(*gpu, dev_dw, dw_ref, what + " dw");
      // Without a bias gradient the buffer must stay as it was.
      ExpectGradClose(*gpu, dev_db, with_bias ? db_ref : db0, what + " db");
    }

    const std::string what = "RmsNormBackward " + shape + (alias ? " dx=dy" : "");
    Tensor dx_ref = Tensor::Empty({c.rows, c.h}, DType::kF32);
    Tensor dw_ref = dw0.Clone();
    RmsNormBackward(x, w, 1e-6f, dy, dx_ref, dw_ref);
    Tensor dev_dy = gpu->Upload(dy, dtype);
    Tensor dev_dx = alias ? dev_dy : Poisoned(*gpu, {c.rows, c.h}, dtype);
    Tensor dev_dw = gpu->Upload(dw0, DType::kF32);
    cuda::LaunchRmsNormBackward(dev_x, dev_w, 1e-6f, dev_dy, dev_dx, dev_dw, gpu->stream());
    BATON_EXPECT_CLOSE(gpu->ToHostF32(dev_dx), dx_ref, dtype, what + " dx");
    ExpectGradClose(*gpu, dev_dw, dw_ref, what + " dw");
  }
}

TEST_P(CudaTrainingSimpleOps, GeluNewBackward) {
  const DType dtype = GetParam();
  BATON_GPU_OR_SKIP(gpu, dtype);
  std::mt19937 rng(22);
  for (int64_t n : {1, 3, 64}) {
    for (int64_t f : {1, 1001, 4096}) {
      for (bool alias : {false, true}) {
        const std::string what = "GeluNewBackward " + Dims({n, f}) + (alias ? " dx=dy" : "");
        Tensor x = RandomHost(rng, {n, f}, dtype, -6.0f, 6.0f);
        Tensor dy = RandomHost(rng, {n, f}, dtype);
        Tensor ref = Tensor::Empty({n, f}, DType::kF32);
        GeluNewBackward(x, dy, ref);
        Tensor dev_dy = gpu->Upload(dy, dtype);
        Tensor dev_dx = alias ? dev_dy : Poisoned(*gpu, {n, f}, dtype);
        cuda::LaunchGeluNewBackward(gpu->Upload(x, dtype), dev_dy, dev_dx, gpu->stream());
        BATON_EXPECT_CLOSE(gpu->ToHostF32(dev_dx), ref, dtype, what);
      }
    }
  }
}

TEST_P(CudaTrainingSimpleOps, SwiGluBackward) {
  const DType dtype = GetParam();
  BATON_GPU_OR_SKIP(gpu, dtype);
  std::mt19937 rng(23);
  for (int64_t n : {1, 17}) {
    for (int64_t f : {1, 333, 5632}) {
      Tensor gate_up = RandomHost(rng, {n, 2 * f}, dtype, -6.0f, 6.0f);
      Tensor dout = RandomHost(rng, {n, f}, dtype);
      Tensor ref = Tensor::Empty({n, 2 * f}, DType::kF32);
      SwiGluBackward(gate_up, dout, ref);
      Tensor dev_dgate_up = Poisoned(*gpu, {n, 2 * f}, dtype);
      cuda::LaunchSwiGluBackward(gpu->Upload(gate_up, dtype), gpu->Upload(dout, dtype), dev_dgate_up, gpu->stream());
      BATON_EXPECT_CLOSE(gpu->ToHostF32(dev_dgate_up), ref, dtype, "SwiGluBackward " + Dims({n, 2 * f}));
    }
  }
}

TEST_P(CudaTrainingSimpleOps, RopeBackward) {
  const DType dtype = GetParam();
  BATON_GPU_OR_SKIP(gpu, dtype);
  std::mt19937 rng(24);
  struct Case {
    int heads, kv_heads, head_dim;
    int64_t n;
  };
  for (const Case& c : {Case{4, 2, 64, 9}, Case{32, 8, 128, 40}, Case{2, 1, 16, 1}, Case{3, 3, 6, 5}}) {
    const std::string what = "RopeBackward D=" + std::to_string(c.head_dim) + " H=" + std::to_string(c.heads) +
                             " KV=" + std::to_string(c.kv_heads) + " N=" + std::to_string(c.n);
    const int64_t q_k_cols = static_cast<int64_t>(c.heads + c.kv_heads) * c.head_dim;
    const int64_t width = q_k_cols + static_cast<int64_t>(c.kv_heads) * c.head_dim;  // fused qkv
    Tensor dqkv = RandomHost(rng, {c.n, width}, dtype);
    std::vector<int32_t> pos(c.n);
    std::uniform_int_distribution<int32_t> pos_dist(0, 8191);
    for (auto& p : pos) p = pos_dist(rng);
    Tensor inv_freq = Tensor::Empty({c.head_dim / 2}, DType::kF32);
    for (int j = 0; j < c.head_dim / 2; ++j) {
      inv_freq.data<float>()[j] = 1.0f / std::pow(10000.0f, 2.0f * j / c.head_dim);
    }
    Tensor positions = HostI32(pos, {c.n});
    const Tensor dev_pos = gpu->Upload(positions, DType::kI32), dev_freq = gpu->Upload(inv_freq, DType::kF32);
    Tensor dev = gpu->Upload(dqkv, dtype);
    cuda::LaunchRopeBackward(dev, dev_pos, dev_freq, c.heads, c.kv_heads, c.head_dim, gpu->stream());
    const Tensor before = dqkv.Clone();
    RopeBackward(dqkv, positions, inv_freq, c.heads, c.kv_heads, c.head_dim);
    const Tensor got = gpu->ToHostF32(dev);
    BATON_EXPECT_CLOSE(got, dqkv, dtype, what);
    int64_t v_changed = 0;
    for (int64_t i = 0; i < c.n; ++i) {
      for (int64_t j = q_k_cols; j < width; ++j) {
        v_changed += got.data<float>()[i * width + j] != before.data<float>()[i * width + j];
      }
    }
    EXPECT_EQ(v_changed, 0) << what << ": the v columns must stay untouched";
    // Independent of the CPU reference: the backward undoes the forward.
    cuda::LaunchRope(dev, dev_pos, dev_freq, c.heads, c.kv_heads, c.head_dim, gpu->stream());
    BATON_EXPECT_CLOSE(gpu->ToHostF32(dev), before, dtype, what + " then Rope (round trip)");
  }
}

TEST_P(CudaTrainingSimpleOps, EmbeddingBackward) {
  const DType dtype = GetParam();
  BATON_GPU_OR_SKIP(gpu, dtype);
  std::mt19937 rng(25);
  const int vocab = 997;
  for (int64_t hidden : {1, 64, 2051}) {
    std::vector<int32_t> ids = {0, vocab - 1, 5, 5, 300, 996, 1, 42, 0};
    for (int i = 0; i < 40; ++i) ids.push_back(7);  // many updates of one row meet in atomics
    const int64_t n = static_cast<int64_t>(ids.size());
    Tensor host_ids = HostI32(ids, {n});
    Tensor dy = RandomHost(rng, {n, hidden}, dtype);
    Tensor table0 = RandomHost(rng, {vocab, hidden}, DType::kF32, -2.0f, 2.0f);
    Tensor ref = table0.Clone();
    EmbeddingBackward(host_ids, dy, ref);
    Tensor dev_table = gpu->Upload(table0, DType::kF32);
    cuda::LaunchEmbeddingBackward(gpu->Upload(host_ids, DType::kI32), gpu->Upload(dy, dtype), dev_table, gpu->stream());
    ExpectGradClose(*gpu, dev_table, ref, "EmbeddingBackward hidden=" + std::to_string(hidden));
    // Rows no id points at are untouched exactly.
    const Tensor got = gpu->ToHostF32(dev_table);
    EXPECT_EQ(
        std::memcmp(got.data<float>() + 2 * hidden, table0.data<float>() + 2 * hidden, 3 * hidden * sizeof(float)), 0);
  }
}

TEST_P(CudaTrainingSimpleOps, LinearBackward) {
  const DType dtype = GetParam();
  BATON_GPU_OR_SKIP(gpu, dtype);
  std::mt19937 rng(26);
  enum class Dx { kWanted, kNull, kUndefined };
  struct Case {
    int64_t m, k, n;
    bool bias;
    Dx dx;
  };
  // 2000 rows: the bias sum is split over many row chunks.
  for (const Case& c : {Case{1, 64, 64, false, Dx::kWanted}, Case{7, 129, 33, true, Dx::kWanted},
                        Case{300, 768, 257, true, Dx::kWanted}, Case{64, 4096, 1, true, Dx::kNull},
                        Case{2000, 48, 96, true, Dx::kWanted}, Case{5, 1, 7, true, Dx::kUndefined},
                        Case{16, 512, 1024, false, Dx::kWanted}}) {
    const std::string what = "LinearBackward M=" + std::to_string(c.m) + " K=" + std::to_string(c.k) +
                             " N=" + std::to_string(c.n) + (c.bias ? " +db" : "");
    Tensor x = RandomHost(rng, {c.m, c.k}, dtype);
    Tensor w = RandomHost(rng, {c.n, c.k}, dtype, -0.5f, 0.5f);
    Tensor dy = RandomHost(rng, {c.m, c.n}, dtype);
    const float scale = std::sqrt(static_cast<float>(c.m)) / 3.0f;
    Tensor dw0 = RandomHost(rng, {c.n, c.k}, DType::kF32, -scale, scale);
    Tensor db0 = RandomHost(rng, {c.n}, DType::kF32, -scale, scale);
    Tensor dx_ref = Tensor::Empty({c.m, c.k}, DType::kF32);
    Tensor dw_ref = dw0.Clone(), db_ref = db0.Clone();
    LinearBackward(x, w, dy, &dx_ref, dw_ref, c.bias ? &db_ref : nullptr);

    Tensor dev_dx = c.dx == Dx::kWanted ? Poisoned(*gpu, {c.m, c.k}, dtype) : Tensor();
    Tensor dev_dw = gpu->Upload(dw0, DType::kF32), dev_db = gpu->Upload(db0, DType::kF32);
    const Status st = cuda::RunLinearBackward(gpu->cublas(), gpu->Upload(x, dtype), gpu->Upload(w, dtype),
                                              gpu->Upload(dy, dtype), c.dx == Dx::kNull ? nullptr : &dev_dx, dev_dw,
                                              c.bias ? &dev_db : nullptr, gpu->stream());
    ASSERT_TRUE(st.ok()) << what << ": " << st.ToString();
    if (c.dx == Dx::kWanted) BATON_EXPECT_CLOSE(gpu->ToHostF32(dev_dx), dx_ref, dtype, what + " dx");
    ExpectGradClose(*gpu, dev_dw, dw_ref, what + " dw");
    ExpectGradClose(*gpu, dev_db, c.bias ? db_ref : db0, what + " db");
  }
}

INSTANTIATE_TEST_SUITE_P(AllFloat, CudaTrainingSimpleOps, ::testing::ValuesIn(TestedDTypes()), DTypeParamName);

// The optimizer works on float32 master weights and gradients only. Step 2
// clips (a coefficient applied as the gradient is read, against the host's
// scaling of the gradients first) and every step writes a bf16 compute copy
// of the second parameter, which must equal the host's rounding of the
// updated value.
TEST(CudaTrainingOptimizer, AdamWMatchesTheCpuOptimizerOverThreeSteps) {
  BATON_GPU_OR_SKIP(gpu, DType::kF32);
  std::mt19937 rng(27);
  AdamWOptions options;
  options.weight_decay = 0.1;
  AdamW cpu(options);
  std::vector<Tensor> params = {RandomHost(rng, {1}, DType::kF32), RandomHost(rng, {1000}, DType::kF32),
                                RandomHost(rng, {333, 301}, DType::kF32)};
  std::vector<Tensor> dev_params, dev_m, dev_v;
  for (const Tensor& p : params) {
    dev_params.push_back(gpu->Upload(p, DType::kF32));
    dev_m.push_back(gpu->Upload(Tensor::Zeros(p.shape(), DType::kF32), DType::kF32));
    dev_v.push_back(gpu->Upload(Tensor::Zeros(p.shape(), DType::kF32), DType::kF32));
  }
  Tensor dev_copy = gpu->Allocate(params[1].shape(), DType::kBF16);
  const double lrs[] = {1e-3, 3e-3, 5e-4};
  const float clip[] = {1.0f, 0.37f, 1.0f};
  for (int step = 1; step <= 3; ++step) {
    const double lr = lrs[step - 1];
    std::vector<Tensor> grads;
    for (const Tensor& p : params) grads.push_back(RandomHost(rng, p.shape(), DType::kF32, -2.0f, 2.0f));
    const cuda::AdamWStepArgs args = cuda::MakeAdamWStepArgs(lr, options.beta1, options.beta2, options.eps,
                                                             options.weight_decay, step, clip[step - 1]);
    for (size_t i = 0; i < params.size(); ++i) {
      cuda::LaunchAdamWStep(dev_params[i], gpu->Upload(grads[i], DType::kF32), dev_m[i], dev_v[i], args,
                            i == 1 ? &dev_copy : nullptr, gpu->stream());
    }
    if (clip[step - 1] < 1.0f) ScaleTensors(grads, clip[step - 1]);
    cpu.Step(params, grads, lr);
  }
  const Tensor got_copy = gpu->ToHostF32(dev_copy), want_copy = params[1].ToDType(DType::kBF16).ToF32();
  EXPECT_EQ(std::memcmp(got_copy.data<float>(), want_copy.data<float>(), want_copy.nbytes()), 0)
      << "the bf16 compute copy is the updated value rounded to nearest even";
  for (size_t i = 0; i < params.size(); ++i) {
    const std::string what = "AdamW param " + std::to_string(i);
    const Tensor got_p = gpu->ToHostF32(dev_params[i]), got_m = gpu->ToHostF32(dev_m[i]),
                 got_v = gpu->ToHostF32(dev_v[i]);
    int64_t differing_bits = 0;
    for (int64_t j = 0; j < params[i].numel(); ++j) {
      differing_bits += got_p.data<float>()[j] != params[i].data<float>()[j];
    }
    const ErrorReport rp = Compare(got_p, params[i]), rm = Compare(got_m, cpu.exp_avg()[i]),
                      rv = Compare(got_v, cpu.exp_avg_sq()[i]);
    std::printf("  [F32 %s] p %s, m %s, v %s, %lld of %lld values not bit-identical\n", what.c_str(),
                rp.ToString().c_str(), rm.ToString().c_str(), rv.ToString().c_str(),
                static_cast<long long>(differing_bits), static_cast<long long>(params[i].numel()));
    EXPECT_EQ(differing_bits, 0) << what << ": the kernel rounds each operation as the CPU does";
    for (const ErrorReport* r : {&rp, &rm, &rv}) {
      EXPECT_LE(r->rel, 1e-6) << what;
      EXPECT_EQ(r->non_finite, 0) << what;
    }
  }
}

TEST(CudaTrainingOptimizer, SumSquaresMatchesTheHostNorm) {
  BATON_GPU_OR_SKIP(gpu, DType::kF32);
  std::mt19937 rng(28);
  std::vector<Tensor> grads = {RandomHost(rng, {1}, DType::kF32, -3.0f, 3.0f),
                               RandomHost(rng, {1000}, DType::kF32, -3.0f, 3.0f),
                               RandomHost(rng, {(1 << 20) + 7}, DType::kF32, -3.0f, 3.0f)};
  Tensor out = gpu->Allocate({2}, DType::kF32);  // 8 bytes: one double
  double* dev_sum = static_cast<double*>(out.raw());
  // One tensor alone, then all three added into the same zeroed double.
  for (bool all : {false, true}) {
    ASSERT_EQ(cudaMemsetAsync(dev_sum, 0, sizeof(double), gpu->stream()), cudaSuccess);
    std::vector<Tensor> used;
    for (size_t i = all ? 0 : 2; i < grads.size(); ++i) {
      cuda::LaunchSumSquares(gpu->Upload(grads[i], DType::kF32), dev_sum, gpu->stream());
      used.push_back(grads[i]);
    }
    double got = 0;
    ASSERT_EQ(cudaMemcpyAsync(&got, dev_sum, sizeof(double), cudaMemcpyDeviceToHost, gpu->stream()), cudaSuccess);
    ASSERT_TRUE(gpu->Synchronize().ok());
    double want = 0;
    for (const Tensor& g : used) {
      for (int64_t i = 0; i < g.numel(); ++i) want += static_cast<double>(g.data<float>()[i]) * g.data<float>()[i];
    }
    EXPECT_NEAR(got, want, 1e-12 * want) << (all ? "three tensors" : "one tensor");
    EXPECT_NEAR(std::sqrt(got), GlobalGradNorm(used), 1e-12 * std::sqrt(want));
  }
}

}  // namespace
}  // namespace baton::testing
