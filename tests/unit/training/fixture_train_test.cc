// Training against transformers' float32 reference (tests/data/*-mini,
// reference.json "train"): two 32-token sequences, labels = inputs, three
// AdamW steps (lr 1e-3, betas (0.9, 0.999), eps 1e-8, wd 0.01, no clipping),
// in one process (the multi-rank layouts run the same check under mpirun:
// tests/mpi/train_layout_test.cc). Checks the loss before each step and
// after the last, the global gradient norm of each step, every parameter's
// gradient norm at step 1, the full grad0.* tensors, every parameter's norm
// after 3 steps and the param3.* tensors.
#include <gtest/gtest.h>

#include <cmath>

#include "runtime/training/hf_layout.h"
#include "tests/unit/training/train_reference.h"

namespace baton {
namespace {

using testing::TrainReference;

std::unique_ptr<PipelineTrainer> MakeTrainer(const std::string& model_dir, const TrainerOptions& options) {
  auto config = LoadModelConfig(model_dir);
  EXPECT_TRUE(config.ok());
  auto trainer = PipelineTrainer::Create(model_dir, {StageRange{0, config->num_layers}}, options, nullptr, nullptr);
  EXPECT_TRUE(trainer.ok()) << trainer.status().ToString();
  return trainer.ok() ? std::move(trainer).value() : nullptr;
}

std::string Join(const std::vector<std::string>& lines) {
  std::string s;
  for (const auto& l : lines) s += l + "\n";
  return s;
}

class FixtureTrainTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    auto ref = TrainReference::Load(GetParam());
    ASSERT_TRUE(ref.ok()) << ref.status().ToString();
    ref_ = std::make_unique<TrainReference>(std::move(ref).value());
  }
  std::unique_ptr<TrainReference> ref_;
};

TEST_P(FixtureTrainTest, ThreeAdamWStepsMatchTransformers) {
  auto trainer = MakeTrainer(ref_->model_dir(), {});
  ASSERT_NE(trainer, nullptr);
  EXPECT_EQ(CountTargets(ref_->batch()), ref_->batch().num_seqs * (ref_->batch().seq_len - 1));
  const auto failures = ref_->RunAndCheck(*trainer);
  EXPECT_TRUE(failures.empty()) << Join(failures);
}

// Recomputing each layer in backward from its kept input gives the same run.
TEST_P(FixtureTrainTest, ActivationCheckpointingMatchesTransformers) {
  TrainerOptions options;
  options.activation_checkpointing = true;
  options.micro_batches = 2;
  auto trainer = MakeTrainer(ref_->model_dir(), options);
  ASSERT_NE(trainer, nullptr);
  const auto failures = ref_->RunAndCheck(*trainer);
  EXPECT_TRUE(failures.empty()) << Join(failures);
  // Only each layer's input [rows, hidden] was kept, plus the head's gradient.
  const ModelConfig& c = trainer->config();
  const size_t per_mb = static_cast<size_t>(ref_->batch().seq_len) * c.hidden_size * sizeof(float);
  EXPECT_LE(trainer->memory().peak_activation_bytes, 2 * (c.num_layers + 1) * per_mb);
}

// The update on the host (--offload-optimizer) is the same update: on the
// CPU the shards are host memory already, so this holds the bookkeeping
// (moments kept apart, shards written back) to the reference.
TEST_P(FixtureTrainTest, OffloadedOptimizerMatchesTransformers) {
  TrainerOptions options;
  options.offload_optimizer = true;
  auto trainer = MakeTrainer(ref_->model_dir(), options);
  ASSERT_NE(trainer, nullptr);
  const auto failures = ref_->RunAndCheck(*trainer);
  EXPECT_TRUE(failures.empty()) << Join(failures);
  EXPECT_TRUE(trainer->memory().optimizer_on_host);
  EXPECT_EQ(trainer->memory().optimizer_bytes, 2 * trainer->memory().parameter_bytes);
}

// Two micro-batches of one sequence each, accumulated, give the gradient of
// the whole batch.
TEST_P(FixtureTrainTest, GradientAccumulationEqualsOneBatch) {
  TrainerOptions two;
  two.micro_batches = 2;
  auto whole = MakeTrainer(ref_->model_dir(), {});
  auto split = MakeTrainer(ref_->model_dir(), two);
  ASSERT_TRUE(whole && split);
  auto a = whole->ComputeGradients(ref_->batch());
  auto b = split->ComputeGradients(ref_->batch());
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NEAR(a->sum, b->sum, 1e-4);
  EXPECT_EQ(a->tokens, b->tokens);
  auto ga = whole->GatherModel(true);
  auto gb = split->GatherModel(true);
  ASSERT_TRUE(ga.ok() && gb.ok() && ga->has_value() && gb->has_value());
  auto ta = ToHfTensors(whole->config(), **ga);
  auto tb = ToHfTensors(split->config(), **gb);
  ASSERT_EQ(ta.size(), tb.size());
  for (size_t i = 0; i < ta.size(); ++i) {
    double diff = 0, ref = 0;
    for (int64_t j = 0; j < ta[i].second.numel(); ++j) {
      const double x = ta[i].second.data<float>()[j], y = tb[i].second.data<float>()[j];
      diff += (x - y) * (x - y);
      ref += x * x;
    }
    EXPECT_LT(std::sqrt(diff / std::max(ref, 1e-30)), 1e-5) << ta[i].first;
  }
}

// Masked labels (-100) drop out of the mean: masking the second half of one
// sequence changes the loss to the mean over the remaining targets.
TEST_P(FixtureTrainTest, IgnoredLabelsDropOutOfTheMean) {
  auto trainer = MakeTrainer(ref_->model_dir(), {});
  ASSERT_NE(trainer, nullptr);
  const TrainBatch& batch = ref_->batch();
  TrainBatch masked = batch;
  for (int t = 16; t < masked.seq_len; ++t) masked.labels[t] = kIgnoreIndex;
  EXPECT_EQ(CountTargets(masked), CountTargets(batch) - 16);
  auto full = trainer->Evaluate(batch);
  auto part = trainer->Evaluate(masked);
  ASSERT_TRUE(full.ok() && part.ok());
  EXPECT_EQ(part->tokens, full->tokens - 16);
  EXPECT_LT(part->sum, full->sum);
  // Scoring the two halves separately adds up to the whole.
  TrainBatch rest = batch;
  for (int t = 0; t < 16; ++t) rest.labels[t] = kIgnoreIndex;
  for (int t = 32; t < 2 * rest.seq_len; ++t) rest.labels[t] = kIgnoreIndex;
  auto other = trainer->Evaluate(rest);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->tokens, 16);
  EXPECT_NEAR(part->sum + other->sum, full->sum, 1e-3);
}

TEST_P(FixtureTrainTest, BadBatchIsInvalidArgument) {
  auto trainer = MakeTrainer(ref_->model_dir(), {});
  ASSERT_NE(trainer, nullptr);
  TrainBatch bad = ref_->batch();
  bad.input_ids[3] = trainer->config().vocab_size;
  auto loss = trainer->Evaluate(bad);
  ASSERT_FALSE(loss.ok());
  EXPECT_NE(loss.status().ToString().find("outside the vocabulary"), std::string::npos) << loss.status().ToString();
  TrainerOptions three;
  three.micro_batches = 3;  // 2 sequences do not split into 3
  auto odd = MakeTrainer(ref_->model_dir(), three);
  ASSERT_NE(odd, nullptr);
  auto split = odd->ComputeGradients(ref_->batch());
  ASSERT_FALSE(split.ok());
  EXPECT_NE(split.status().ToString().find("micro-batches"), std::string::npos) << split.status().ToString();
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
