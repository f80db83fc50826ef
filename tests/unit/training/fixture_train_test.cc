// Training against transformers' float32 reference (tests/data/*-mini,
// reference.json "train"): two 32-token sequences, labels = inputs, three
// AdamW steps (lr 1e-3, betas (0.9, 0.999), eps 1e-8, wd 0.01, no clipping).
// Checks the loss before each step and after the last, the global gradient
// norm of each step, every parameter's gradient norm at step 1, the full
// grad0.* tensors, every parameter's norm after 3 steps and the param3.*
// tensors.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "runtime/checkpoint/checkpoint.h"
#include "runtime/training/adamw.h"
#include "runtime/training/grad_clip.h"
#include "runtime/training/hf_layout.h"
#include "runtime/training/training_model.h"
#include "tests/test_data.h"

namespace baton {
namespace {

double L2(const Tensor& t) {
  double s = 0;
  for (int64_t i = 0; i < t.numel(); ++i) s += double{t.data<float>()[i]} * t.data<float>()[i];
  return std::sqrt(s);
}

// ||a - b|| / ||b||
double RelativeL2(const Tensor& a, const Tensor& b) {
  double diff = 0, ref = 0;
  for (int64_t i = 0; i < b.numel(); ++i) {
    const double d = double{a.data<float>()[i]} - b.data<float>()[i];
    diff += d * d;
    ref += double{b.data<float>()[i]} * b.data<float>()[i];
  }
  return std::sqrt(diff / ref);
}

class FixtureTrainTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    reference_ = testing::LoadTestJson(GetParam() + "/reference.json")["train"];
    auto model = TrainingModel::Load(testing::TestDataPath(GetParam()));
    ASSERT_TRUE(model.ok()) << model.status().ToString();
    model_ = std::move(model).value();
    auto ref = Checkpoint::OpenFile(testing::TestDataPath(GetParam() + "/reference.safetensors"));
    ASSERT_TRUE(ref.ok()) << ref.status().ToString();
    tensors_ = *ref;
    const auto ids = reference_["batch_ids"].get<std::vector<std::vector<int32_t>>>();
    batch_.num_seqs = static_cast<int>(ids.size());
    batch_.seq_len = static_cast<int>(ids[0].size());
    for (const auto& seq : ids) batch_.input_ids.insert(batch_.input_ids.end(), seq.begin(), seq.end());
    batch_.labels = batch_.input_ids;
  }

  // Checks every HF tensor of `values` against the reference norms, and the
  // full tensors stored as "<prefix>.<name>" where the reference has them.
  void ExpectMatches(const StageWeights& values, const nlohmann::json& norms, const std::string& prefix) {
    std::map<std::string, Tensor> ours;
    for (auto& [name, t] : ToHfTensors(model_->config(), values)) ours[name] = t;
    ASSERT_EQ(ours.size(), norms.size());
    int full = 0;
    for (const auto& [name, norm] : norms.items()) {
      ASSERT_TRUE(ours.count(name)) << name;
      const Tensor& t = ours[name];
      const bool noisy = prefix == "param3" && IsKeyBiasOf(name);
      // See IsKeyBiasOf: the noise-driven k third alone moves this norm by
      // ~3e-3 relative (observed); the layer-0 tensor is checked by parts below.
      const double norm_tol = (noisy ? 1e-2 : 1e-4) * norm.get<double>();
      EXPECT_NEAR(L2(t), norm.get<double>(), norm_tol) << prefix << " norm of " << name;
      const std::string stored = prefix + "." + name;
      if (!tensors_.Has(stored)) continue;
      auto want = tensors_.GetF32(stored, t.shape());
      ASSERT_TRUE(want.ok()) << want.status().ToString();
      if (IsKeyBiasOf(name)) {
        ExpectKeyBiasMatches(t, *want, prefix);
      } else {
        EXPECT_LT(RelativeL2(t, *want), 1e-4) << stored;
      }
      ++full;
    }
    EXPECT_GE(full, 10) << "too few full " << prefix << " tensors compared";
  }

  // GPT-2's fused c_attn bias holds the key bias, whose true gradient is 0:
  // adding b to every key adds q.b to a whole row of scores, which softmax
  // ignores. Both runs see only rounding noise there (~1e-9), and AdamW
  // normalises noise into steps of up to lr, so after 3 steps the k third
  // differs by up to 3 lr in each run, independently. Only that third is
  // held to the AdamW bound; q and v are held to 1e-4.
  bool IsKeyBiasOf(const std::string& name) const {
    return model_->config().model_type == "gpt2" && name.size() > 16 &&
           name.compare(name.size() - 16, 16, "attn.c_attn.bias") == 0;
  }
  void ExpectKeyBiasMatches(const Tensor& ours, const Tensor& want, const std::string& prefix) {
    const int64_t q = model_->config().q_size(), kv = model_->config().kv_size();
    Tensor ours_qkv = ours.Reshape({ours.numel(), 1}), want_qkv = want.Reshape({want.numel(), 1});
    for (auto [begin, end] : {std::pair<int64_t, int64_t>{0, q}, {q + kv, q + 2 * kv}}) {
      EXPECT_LT(RelativeL2(ours_qkv.Rows(begin, end), want_qkv.Rows(begin, end)), 1e-4) << prefix << " q/v bias";
    }
    for (int64_t i = q; i < q + kv; ++i) {
      const float a = ours.data<float>()[i], b = want.data<float>()[i];
      if (prefix == "grad0") {
        EXPECT_LT(std::fabs(a), 1e-6) << "key bias gradient " << i << " should be rounding noise";
      } else {
        EXPECT_LT(std::fabs(a - b), 2 * 3 * 1e-3 * 1.01) << "key bias " << i;
      }
    }
  }

  nlohmann::json reference_;
  std::unique_ptr<TrainingModel> model_;
  Checkpoint tensors_;
  TrainBatch batch_;
};

TEST_P(FixtureTrainTest, ThreeAdamWStepsMatchTransformers) {
  const auto losses = reference_["losses_before_each_step_and_after_last"].get<std::vector<double>>();
  const auto grad_norms = reference_["global_grad_l2_norm_each_step"].get<std::vector<double>>();
  AdamWOptions options;  // the fixture's: lr 1e-3, (0.9, 0.999), 1e-8, wd 0.01
  AdamW adamw(options);
  const int64_t targets = CountTargets(batch_);
  EXPECT_EQ(targets, batch_.num_seqs * (batch_.seq_len - 1));
  for (int step = 0; step < 3; ++step) {
    model_->ZeroGrad();
    auto loss = model_->ForwardBackward(batch_, 1.0f / static_cast<float>(targets));
    ASSERT_TRUE(loss.ok()) << loss.status().ToString();
    EXPECT_NEAR(loss->mean(), losses[step], (step == 0 ? 1e-5 : 1e-4) * losses[step]) << "loss before step " << step;
    std::vector<Tensor> grads = model_->Gradients();
    EXPECT_NEAR(ClipGradNorm(grads, 0.0), grad_norms[step], 1e-4 * grad_norms[step]) << "grad norm, step " << step;
    if (step == 0) ExpectMatches(model_->grads(), reference_["grad0_l2_norm_per_param"], "grad0");
    std::vector<Tensor> params = model_->Parameters();
    adamw.Step(params, grads, options.lr);
  }
  auto last = model_->Evaluate(batch_);
  ASSERT_TRUE(last.ok()) << last.status().ToString();
  EXPECT_NEAR(last->mean(), losses[3], 1e-4 * losses[3]) << "loss after 3 steps";
  ExpectMatches(model_->weights(), reference_["param3_l2_norm_per_param"], "param3");
}

// Two micro-batches of one sequence each, accumulated, give the gradient of
// the whole batch.
TEST_P(FixtureTrainTest, GradientAccumulationEqualsOneBatch) {
  const int64_t targets = CountTargets(batch_);
  model_->ZeroGrad();
  ASSERT_TRUE(model_->ForwardBackward(batch_, 1.0f / static_cast<float>(targets)).ok());
  std::vector<Tensor> whole;
  for (const Tensor& g : model_->Gradients()) whole.push_back(g.Clone());
  model_->ZeroGrad();
  double loss_sum = 0;
  for (int s = 0; s < batch_.num_seqs; ++s) {
    TrainBatch micro;
    micro.num_seqs = 1;
    micro.seq_len = batch_.seq_len;
    micro.input_ids.assign(batch_.input_ids.begin() + s * batch_.seq_len,
                           batch_.input_ids.begin() + (s + 1) * batch_.seq_len);
    micro.labels = micro.input_ids;
    auto loss = model_->ForwardBackward(micro, 1.0f / static_cast<float>(targets));
    ASSERT_TRUE(loss.ok());
    loss_sum += loss->sum;
  }
  const double ref0 = reference_["losses_before_each_step_and_after_last"][0].get<double>();
  EXPECT_NEAR(loss_sum / static_cast<double>(targets), ref0, 1e-5 * ref0);
  const std::vector<Tensor> accumulated = model_->Gradients();
  ASSERT_EQ(accumulated.size(), whole.size());
  for (size_t i = 0; i < whole.size(); ++i) EXPECT_LT(RelativeL2(accumulated[i], whole[i]), 1e-5) << "parameter " << i;
}

// Masked labels (-100) drop out of the mean: masking the second half of one
// sequence changes the loss to the mean over the remaining targets.
TEST_P(FixtureTrainTest, IgnoredLabelsDropOutOfTheMean) {
  TrainBatch masked = batch_;
  for (int t = 16; t < masked.seq_len; ++t) masked.labels[t] = kIgnoreIndex;
  EXPECT_EQ(CountTargets(masked), CountTargets(batch_) - 16);
  auto full = model_->Evaluate(batch_);
  auto part = model_->Evaluate(masked);
  ASSERT_TRUE(full.ok() && part.ok());
  EXPECT_EQ(part->tokens, full->tokens - 16);
  EXPECT_LT(part->sum, full->sum);
  // Scoring the two halves separately adds up to the whole.
  TrainBatch rest = batch_;
  for (int t = 0; t < 16; ++t) rest.labels[t] = kIgnoreIndex;
  for (int t = 32; t < 2 * rest.seq_len; ++t) rest.labels[t] = kIgnoreIndex;
  auto other = model_->Evaluate(rest);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->tokens, 16);
  EXPECT_NEAR(part->sum + other->sum, full->sum, 1e-3);
}

TEST_P(FixtureTrainTest, BadBatchIsInvalidArgument) {
  TrainBatch bad = batch_;
  bad.input_ids[3] = model_->config().vocab_size;
  auto loss = model_->Evaluate(bad);
  ASSERT_FALSE(loss.ok());
  EXPECT_NE(loss.status().ToString().find("outside the vocabulary"), std::string::npos) << loss.status().ToString();
}

INSTANTIATE_TEST_SUITE_P(Models, FixtureTrainTest, ::testing::Values("gpt2-mini", "llama-mini"), [](const auto& info) {
  std::string name = info.param;
  for (char& ch : name) {
    if (ch == '-') ch = '_';
  }
  return name;
});

}  // namespace
}  // namespace baton
