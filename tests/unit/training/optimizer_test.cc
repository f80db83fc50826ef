// AdamW, gradient clipping and learning-rate schedules against independent
// double-precision evaluations of their defining formulas.
#include <gtest/gtest.h>

#include <cmath>

#include "runtime/training/adamw.h"
#include "runtime/training/grad_clip.h"
#include "runtime/training/lr_schedule.h"

namespace baton {
namespace {

Tensor Of(std::initializer_list<float> v) {
  Tensor t = Tensor::Empty({static_cast<int64_t>(v.size())}, DType::kF32);
  std::copy(v.begin(), v.end(), t.data<float>());
  return t;
}

TEST(AdamWTest, MatchesTheTorchRecurrenceOverSeveralSteps) {
  AdamWOptions o;
  o.lr = 0.05;
  o.weight_decay = 0.1;
  AdamW opt(o);
  std::vector<Tensor> params = {Of({1.0f, -2.0f, 0.5f})};
  const double grads[3][3] = {{0.3, -0.1, 0.0}, {0.2, 0.4, -1e-3}, {-0.5, 0.1, 2.0}};
  double p[3] = {1.0, -2.0, 0.5}, m[3] = {0, 0, 0}, v[3] = {0, 0, 0};
  for (int t = 1; t <= 3; ++t) {
    std::vector<Tensor> g = {Of({float(grads[t - 1][0]), float(grads[t - 1][1]), float(grads[t - 1][2])})};
    opt.Step(params, g, o.lr);
    for (int i = 0; i < 3; ++i) {
      const double gi = grads[t - 1][i];
      p[i] *= 1 - o.lr * o.weight_decay;
      m[i] = o.beta1 * m[i] + (1 - o.beta1) * gi;
      v[i] = o.beta2 * v[i] + (1 - o.beta2) * gi * gi;
      const double mhat = m[i] / (1 - std::pow(o.beta1, t));
      const double vhat = v[i] / (1 - std::pow(o.beta2, t));
      p[i] -= o.lr * mhat / (std::sqrt(vhat) + o.eps);
      EXPECT_NEAR(params[0].data<float>()[i], p[i], 1e-6) << "step " << t << " element " << i;
    }
  }
  EXPECT_EQ(opt.step(), 3);
}

TEST(AdamWTest, ZeroGradientStillDecays) {
  AdamWOptions o;
  o.lr = 0.1;
  o.weight_decay = 0.5;
  AdamW opt(o);
  std::vector<Tensor> params = {Of({2.0f})};
  std::vector<Tensor> grads = {Of({0.0f})};
  opt.Step(params, grads, o.lr);
  EXPECT_FLOAT_EQ(params[0].data<float>()[0], 2.0f * 0.95f);
}

TEST(GradClipTest, ScalesToMaxNormOnlyWhenAbove) {
  std::vector<Tensor> g = {Of({3.0f}), Of({0.0f, 4.0f})};
  EXPECT_DOUBLE_EQ(ClipGradNorm(g, 0.0), 5.0);  // off: measure only
  EXPECT_FLOAT_EQ(g[0].data<float>()[0], 3.0f);
  EXPECT_DOUBLE_EQ(ClipGradNorm(g, 10.0), 5.0);  // below: unchanged
  EXPECT_FLOAT_EQ(g[1].data<float>()[1], 4.0f);
  EXPECT_NEAR(ClipGradNorm(g, 1.0), 5.0, 1e-12);
  EXPECT_NEAR(GlobalGradNorm(g), 1.0, 1e-6);
  EXPECT_NEAR(g[0].data<float>()[0], 3.0 / (5.0 + 1e-6), 1e-7);
}

TEST(LrScheduleTest, WarmupThenCosineToZero) {
  LrSchedule s{LrScheduleKind::kCosine, 1.0, 10, 110};
  EXPECT_DOUBLE_EQ(s.LearningRate(0), 0.0);
  EXPECT_DOUBLE_EQ(s.LearningRate(5), 0.5);
  EXPECT_DOUBLE_EQ(s.LearningRate(10), 1.0);
  EXPECT_NEAR(s.LearningRate(60), 0.5, 1e-12);
  EXPECT_NEAR(s.LearningRate(110), 0.0, 1e-12);
  LrSchedule c{LrScheduleKind::kConstant, 2e-3, 0, 5};
  EXPECT_DOUBLE_EQ(c.LearningRate(0), 2e-3);
  EXPECT_DOUBLE_EQ(c.LearningRate(4), 2e-3);
  EXPECT_FALSE(ParseLrScheduleKind("linear").ok());
  EXPECT_TRUE(ParseLrScheduleKind("cosine").ok());
}

}  // namespace
}  // namespace baton
