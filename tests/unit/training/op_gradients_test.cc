// Finite-difference checks of every backward op in runtime/training on
// small random inputs: the analytic gradient of sum(dy * f(x)) against
// central differences of the float32 forward. Tolerance 1e-2 relative (L2
// over the whole gradient): float32 differences at step 1e-2 are good to
// ~1e-3, while any wrong term in a backward is off by O(1).
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>

#include "runtime/backend/cpu/cpu_backend.h"
#include "runtime/training/activation_grad.h"
#include "runtime/training/causal_attention.h"
#include "runtime/training/embedding_grad.h"
#include "runtime/training/linear_grad.h"
#include "runtime/training/lm_head_loss.h"
#include "runtime/training/norm_grad.h"
#include "runtime/training/rope_grad.h"

namespace baton {
namespace {

Tensor Random(const Shape& shape, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  Tensor t = Tensor::Empty(shape, DType::kF32);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = dist(rng);
  return t;
}

double Dot(const Tensor& a, const Tensor& b) {
  double s = 0;
  for (int64_t i = 0; i < a.numel(); ++i) s += double{a.data<float>()[i]} * b.data<float>()[i];
  return s;
}

// Central differences of objective() in every element of x, compared with
// `analytic` by relative L2 error.
double FiniteDifferenceError(const std::function<double()>& objective, Tensor& x, const Tensor& analytic,
                             float step = 1e-2f) {
  double diff = 0, ref = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    float& v = x.data<float>()[i];
    const float saved = v;
    v = saved + step;
    const double plus = objective();
    v = saved - step;
    const double minus = objective();
    v = saved;
    const double numeric = (plus - minus) / (2.0 * step);
    const double a = analytic.data<float>()[i];
    diff += (a - numeric) * (a - numeric);
    ref += numeric * numeric;
  }
  EXPECT_GT(ref, 0.0) << "gradient is identically zero: the check would prove nothing";
  return std::sqrt(diff / ref);
}

constexpr double kTol = 1e-2;

TEST(OpGradientsTest, Linear) {
  CpuBackend be;
  Tensor x = Random({5, 7}, 1), w = Random({4, 7}, 2), b = Random({4}, 3), dy = Random({5, 4}, 4);
  Tensor y = Tensor::Empty({5, 4}, DType::kF32);
  auto objective = [&] {
    be.Linear(x, w, b, y);
    return Dot(y, dy);
  };
  Tensor dx = Tensor::Empty({5, 7}, DType::kF32), dw = Tensor::Zeros({4, 7}, DType::kF32);
  Tensor db = Tensor::Zeros({4}, DType::kF32);
  LinearBackward(x, w, dy, &dx, dw, &db);
  EXPECT_LT(FiniteDifferenceError(objective, x, dx), kTol);
  EXPECT_LT(FiniteDifferenceError(objective, w, dw), kTol);
  EXPECT_LT(FiniteDifferenceError(objective, b, db), kTol);
  // Weight gradients accumulate.
  LinearBackward(x, w, dy, nullptr, dw, &db);
  Tensor dw1 = Tensor::Zeros({4, 7}, DType::kF32);
  LinearBackward(x, w, dy, nullptr, dw1, nullptr);
  EXPECT_NEAR(dw.data<float>()[5], 2 * dw1.data<float>()[5], 1e-5);
}

TEST(OpGradientsTest, LayerNorm) {
  CpuBackend be;
  Tensor x = Random({3, 16}, 5), w = Random({16}, 6), b = Random({16}, 7), dy = Random({3, 16}, 8);
  Tensor y = Tensor::Empty({3, 16}, DType::kF32);
  auto objective = [&] {
    be.LayerNorm(x, w, b, 1e-5f, y);
    return Dot(y, dy);
  };
  Tensor dx = Tensor::Empty({3, 16}, DType::kF32), dw = Tensor::Zeros({16}, DType::kF32);
  Tensor db = Tensor::Zeros({16}, DType::kF32);
  LayerNormBackward(x, w, 1e-5f, dy, dx, dw, &db);
  EXPECT_LT(FiniteDifferenceError(objective, x, dx), kTol);
  EXPECT_LT(FiniteDifferenceError(objective, w, dw), kTol);
  EXPECT_LT(FiniteDifferenceError(objective, b, db), kTol);
}

TEST(OpGradientsTest, RmsNorm) {
  CpuBackend be;
  Tensor x = Random({3, 16}, 9), w = Random({16}, 10), dy = Random({3, 16}, 11);
  Tensor y = Tensor::Empty({3, 16}, DType::kF32);
  auto objective = [&] {
    be.RmsNorm(x, w, 1e-6f, y);
    return Dot(y, dy);
  };
  Tensor dx = Tensor::Empty({3, 16}, DType::kF32), dw = Tensor::Zeros({16}, DType::kF32);
  RmsNormBackward(x, w, 1e-6f, dy, dx, dw);
  EXPECT_LT(FiniteDifferenceError(objective, x, dx), kTol);
  EXPECT_LT(FiniteDifferenceError(objective, w, dw), kTol);
}

TEST(OpGradientsTest, GeluNew) {
  CpuBackend be;
  Tensor x = Random({4, 9}, 12, 2.0f), dy = Random({4, 9}, 13);
  auto objective = [&] {
    Tensor y = x.Clone();
    be.GeluNew(y);
    return Dot(y, dy);
  };
  Tensor dx = Tensor::Empty({4, 9}, DType::kF32);
  GeluNewBackward(x, dy, dx);
  EXPECT_LT(FiniteDifferenceError(objective, x, dx), kTol);
}

TEST(OpGradientsTest, SwiGlu) {
  CpuBackend be;
  Tensor gu = Random({3, 2 * 6}, 14, 2.0f), dy = Random({3, 6}, 15);
  Tensor y = Tensor::Empty({3, 6}, DType::kF32);
  auto objective = [&] {
    be.SwiGlu(gu, y);
    return Dot(y, dy);
  };
  Tensor dgu = Tensor::Empty({3, 12}, DType::kF32);
  SwiGluBackward(gu, dy, dgu);
  EXPECT_LT(FiniteDifferenceError(objective, gu, dgu), kTol);
}

TEST(OpGradientsTest, RopeOnQAndKColumnsOnly) {
  CpuBackend be;
  const int heads = 2, kv_heads = 1, d = 8, width = (heads + 2 * kv_heads) * d;
  Tensor qkv = Random({5, width}, 16), dy = Random({5, width}, 17);
  Tensor pos = Tensor::Empty({5}, DType::kI32), inv = Tensor::Empty({d / 2}, DType::kF32);
  for (int i = 0; i < 5; ++i) pos.data<int32_t>()[i] = 3 * i + 1;
  for (int j = 0; j < d / 2; ++j) inv.data<float>()[j] = std::pow(100.0f, -2.0f * j / d);
  auto objective = [&] {
    Tensor y = qkv.Clone();
    be.Rope(y, pos, inv, heads, kv_heads, d);
    return Dot(y, dy);
  };
  Tensor g = dy.Clone();
  RopeBackward(g, pos, inv, heads, kv_heads, d);
  EXPECT_LT(FiniteDifferenceError(objective, qkv, g), kTol);
  // v's columns pass through unchanged.
  const int64_t v0 = (heads + kv_heads) * d;
  EXPECT_EQ(g.data<float>()[v0], dy.data<float>()[v0]);
}

void CheckAttention(int heads, int kv_heads, int window) {
  const int d = 4, width = (heads + 2 * kv_heads) * d;
  const std::vector<int> starts = {0, 5, 11};  // two sequences of different lengths
  AttentionShape shape;
  shape.num_heads = heads;
  shape.num_kv_heads = kv_heads;
  shape.head_dim = d;
  shape.scale = 1.0f / std::sqrt(static_cast<float>(d));
  shape.sliding_window = window;
  Tensor qkv = Random({11, width}, 18), dy = Random({11, heads * d}, 19);
  Tensor out = Tensor::Empty({11, heads * d}, DType::kF32), lse = Tensor::Empty({11, heads}, DType::kF32);
  auto objective = [&] {
    CausalAttentionForward(qkv, starts, shape, out, lse);
    return Dot(out, dy);
  };
  objective();
  Tensor dqkv = Tensor::Empty({11, width}, DType::kF32);
  CausalAttentionBackward(qkv, out, lse, dy, starts, shape, dqkv);
  EXPECT_LT(FiniteDifferenceError(objective, qkv, dqkv), kTol) << heads << "/" << kv_heads << " window " << window;
}

TEST(OpGradientsTest, CausalAttention) { CheckAttention(2, 2, 0); }
TEST(OpGradientsTest, CausalAttentionGqa) { CheckAttention(4, 2, 0); }
TEST(OpGradientsTest, CausalAttentionSlidingWindow) { CheckAttention(2, 1, 3); }

// The first row of each sequence attends only to itself: its output is its
// own v, whatever q and k are.
TEST(OpGradientsTest, CausalAttentionIsCausal) {
  AttentionShape shape{1, 1, 4, 0, 0.5f, 0};
  Tensor qkv = Random({3, 12}, 20);
  Tensor out = Tensor::Empty({3, 4}, DType::kF32), lse = Tensor::Empty({3, 1}, DType::kF32);
  CausalAttentionForward(qkv, {0, 3}, shape, out, lse);
  for (int c = 0; c < 4; ++c) EXPECT_FLOAT_EQ(out.data<float>()[c], qkv.data<float>()[8 + c]);
}

TEST(OpGradientsTest, LmHeadCrossEntropyChunked) {
  const int64_t n = 7, h = 6, vocab = 11;
  Tensor x = Random({n, h}, 21), head = Random({vocab, h}, 22);
  Tensor targets = Tensor::Empty({n}, DType::kI32);
  for (int64_t i = 0; i < n; ++i) targets.data<int32_t>()[i] = static_cast<int32_t>((i * 5) % vocab);
  targets.data<int32_t>()[3] = kIgnoreIndex;
  const float scale = 1.0f / 6;
  auto objective = [&] { return LmHeadCrossEntropy(x, head, targets, 0, nullptr, nullptr, 3).sum * scale; };
  Tensor dx = Tensor::Empty({n, h}, DType::kF32), dhead = Tensor::Zeros({vocab, h}, DType::kF32);
  const LossSum loss = LmHeadCrossEntropy(x, head, targets, scale, &dx, &dhead, 3);
  EXPECT_EQ(loss.tokens, 6);
  EXPECT_LT(FiniteDifferenceError(objective, x, dx), kTol);
  EXPECT_LT(FiniteDifferenceError(objective, head, dhead), kTol);
  for (int64_t j = 0; j < h; ++j) EXPECT_EQ(dx.data<float>()[3 * h + j], 0.0f) << "ignored row has no gradient";
  // The chunk size changes nothing but memory.
  Tensor dx1 = Tensor::Empty({n, h}, DType::kF32), dhead1 = Tensor::Zeros({vocab, h}, DType::kF32);
  const LossSum one = LmHeadCrossEntropy(x, head, targets, scale, &dx1, &dhead1, 64);
  EXPECT_NEAR(one.sum, loss.sum, 1e-9);
  // Independent check of the loss: -log softmax at the target, row 0.
  double denom = 0, target_logit = 0;
  for (int64_t v = 0; v < vocab; ++v) {
    double z = 0;
    for (int64_t j = 0; j < h; ++j) z += double{x.data<float>()[j]} * head.data<float>()[v * h + j];
    denom += std::exp(z);
    if (v == targets.data<int32_t>()[0]) target_logit = z;
  }
  const LossSum row0 = LmHeadCrossEntropy(x.Rows(0, 1), head, targets.Rows(0, 1), 0, nullptr, nullptr);
  EXPECT_NEAR(row0.sum, std::log(denom) - target_logit, 1e-5);
}

TEST(OpGradientsTest, EmbeddingSumsRepeatedIds) {
  CpuBackend be;
  Tensor table = Random({5, 3}, 23), dy = Random({4, 3}, 24);
  Tensor ids = Tensor::Empty({4}, DType::kI32);
  const int32_t id_values[] = {1, 4, 1, 0};
  for (int i = 0; i < 4; ++i) ids.data<int32_t>()[i] = id_values[i];
  Tensor y = Tensor::Empty({4, 3}, DType::kF32);
  auto objective = [&] {
    be.Embedding(ids, table, y);
    return Dot(y, dy);
  };
  Tensor dtable = Tensor::Zeros({5, 3}, DType::kF32);
  EmbeddingBackward(ids, dy, dtable);
  EXPECT_LT(FiniteDifferenceError(objective, table, dtable), kTol);
}

}  // namespace
}  // namespace baton
