// The engine against transformers' float32 reference (tests/data/*-mini):
// full logits of every prompt, greedy continuations, ragged batches and
// paged decoding.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>

#include "runtime/backend/cpu/cpu_backend.h"
#include "runtime/checkpoint/checkpoint.h"
#include "stages/stage.h"
#include "tests/test_data.h"

namespace baton {
namespace {

class FixtureForwardTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    model_dir_ = testing::TestDataPath(GetParam());
    reference_ = testing::LoadTestJson(GetParam() + "/reference.json");
    auto config = LoadModelConfig(model_dir_);
    ASSERT_TRUE(config.ok()) << config.status().ToString();
    config_ = *config;
    stage_ = NewStage(64);
  }

  std::unique_ptr<Stage> NewStage(int num_blocks) {
    StageOptions options;
    options.num_kv_blocks = num_blocks;
    next_block_ = 0;
    auto stage = Stage::Load(model_dir_, config_, options, backend_);
    EXPECT_TRUE(stage.ok()) << stage.status().ToString();
    return stage.ok() ? std::move(stage).value() : nullptr;
  }

  std::vector<int32_t> PromptIds(size_t i) { return reference_["prompts"][i]["ids"].get<std::vector<int32_t>>(); }
  size_t LongestPrompt() {
    size_t best = 0;
    for (size_t i = 0; i < reference_["prompts"].size(); ++i) {
      if (PromptIds(i).size() > PromptIds(best).size()) best = i;
    }
    return best;
  }
  Tensor ReferenceLogits(size_t prompt) {
    auto ref = Checkpoint::OpenFile(testing::TestDataPath(GetParam() + "/reference.safetensors"));
    EXPECT_TRUE(ref.ok()) << ref.status().ToString();
    const int64_t t = static_cast<int64_t>(PromptIds(prompt).size());
    auto logits = ref->GetF32("logits." + std::to_string(prompt), {t, config_.vocab_size});
    EXPECT_TRUE(logits.ok()) << logits.status().ToString();
    return logits.ok() ? *logits : Tensor();
  }

  // One sequence step; blocks are handed out from `next_block_`.
  SequenceStep Seq(int64_t id, int new_tokens, int context, bool all_logits, BlockTable* table) {
    while (static_cast<int>(table->size()) * 16 < context) table->push_back(next_block_++);
    SequenceStep s;
    s.seq_id = id;
    s.num_new_tokens = new_tokens;
    s.context_len = context;
    s.block_table = *table;
    s.all_logits = all_logits;
    return s;
  }

  Tensor Run(Stage& stage, const StepPlan& plan) {
    auto logits = stage.Forward(plan);
    EXPECT_TRUE(logits.ok()) << logits.status().ToString();
    return logits.ok() ? *logits : Tensor();
  }

  static int32_t Argmax(const float* row, int64_t n) {
    return static_cast<int32_t>(std::max_element(row, row + n) - row);
  }

  std::string model_dir_;
  nlohmann::json reference_;
  ModelConfig config_;
  CpuBackend backend_{2};
  std::unique_ptr<Stage> stage_;
  int32_t next_block_ = 0;
};

TEST_P(FixtureForwardTest, FullLogitsOfEveryPromptMatchReference) {
  for (size_t p = 0; p < reference_["prompts"].size(); ++p) {
    const auto ids = PromptIds(p);
    const int t = static_cast<int>(ids.size());
    Tensor expected = ReferenceLogits(p);
    ASSERT_TRUE(expected.defined());
    BlockTable table;
    StepPlan plan;
    plan.seqs.push_back(Seq(0, t, t, true, &table));
    plan.token_ids = ids;
    Tensor logits = Run(*stage_, plan);
    ASSERT_EQ(logits.shape(), (Shape{t, config_.vocab_size}));
    float max_err = 0;
    for (int64_t i = 0; i < logits.numel(); ++i) {
      max_err = std::max(max_err, std::fabs(logits.data<float>()[i] - expected.data<float>()[i]));
    }
    EXPECT_LE(max_err, 1e-4f) << GetParam() << " prompt " << p;
  }
}

TEST_P(FixtureForwardTest, GreedyDecodeThroughPagedCacheMatchesReference) {
  for (size_t p = 0; p < reference_["prompts"].size(); ++p) {
    auto stage = NewStage(16);
    std::vector<int32_t> tokens = PromptIds(p);
    const auto expected = reference_["prompts"][p]["greedy"].get<std::vector<int32_t>>();
    BlockTable table;
    size_t cached = 0;
    std::vector<int32_t> generated;
    while (generated.size() < expected.size()) {
      StepPlan plan;
      const int fresh = static_cast<int>(tokens.size() - cached);
      plan.seqs.push_back(Seq(0, fresh, static_cast<int>(tokens.size()), false, &table));
      plan.token_ids.assign(tokens.begin() + static_cast<int64_t>(cached), tokens.end());
      Tensor logits = Run(*stage, plan);
      ASSERT_EQ(logits.dim(0), 1);
      cached = tokens.size();
      generated.push_back(Argmax(logits.data<float>(), logits.dim(1)));
      tokens.push_back(generated.back());
    }
    EXPECT_EQ(generated, expected) << GetParam() << " prompt " << p;
  }
}

TEST_P(FixtureForwardTest, RaggedBatchEqualsEachSequenceAlone) {
  const size_t n = reference_["prompts"].size();
  StepPlan batch;
  std::vector<BlockTable> tables(n);
  for (size_t p = 0; p < n; ++p) {
    const auto ids = PromptIds(p);
    batch.seqs.push_back(
        Seq(static_cast<int64_t>(p), static_cast<int>(ids.size()), static_cast<int>(ids.size()), true, &tables[p]));
    batch.token_ids.insert(batch.token_ids.end(), ids.begin(), ids.end());
  }
  Tensor together = Run(*stage_, batch);
  int64_t row = 0;
  for (size_t p = 0; p < n; ++p) {
    const auto ids = PromptIds(p);
    auto alone_stage = NewStage(8);
    BlockTable table;
    StepPlan plan;
    plan.seqs.push_back(Seq(0, static_cast<int>(ids.size()), static_cast<int>(ids.size()), true, &table));
    plan.token_ids = ids;
    Tensor alone = Run(*alone_stage, plan);
    const int64_t v = alone.dim(1);
    for (int64_t i = 0; i < alone.numel(); ++i) {
      ASSERT_NEAR(alone.data<float>()[i], together.data<float>()[row * v + i], 1e-5f) << "prompt " << p;
    }
    row += alone.dim(0);
  }
  EXPECT_EQ(row, together.dim(0));
}

TEST_P(FixtureForwardTest, PagedDecodeStepByStepEqualsOneFullForward) {
  // Decode the prompt one token at a time (each step reads the cache through
  // the block table, crossing block boundaries), then compare every step's
  // logits with one forward over the whole sequence.
  std::vector<int32_t> ids = PromptIds(LongestPrompt());  // 36+ tokens: spans three 16-token blocks
  const int t = static_cast<int>(ids.size());
  BlockTable step_table;
  std::vector<float> stepwise;
  for (int i = 0; i < t; ++i) {
    StepPlan plan;
    plan.seqs.push_back(Seq(0, 1, i + 1, false, &step_table));
    plan.token_ids = {ids[i]};
    Tensor logits = Run(*stage_, plan);
    stepwise.insert(stepwise.end(), logits.data<float>(), logits.data<float>() + logits.numel());
  }
  BlockTable full_table;
  StepPlan full;
  full.seqs.push_back(Seq(1, t, t, true, &full_table));
  full.token_ids = ids;
  Tensor logits = Run(*stage_, full);
  ASSERT_EQ(static_cast<size_t>(logits.numel()), stepwise.size());
  for (size_t i = 0; i < stepwise.size(); ++i) ASSERT_NEAR(stepwise[i], logits.data<float>()[i], 1e-5f) << i;
}

TEST_P(FixtureForwardTest, ChunkedPrefillEqualsOneShotPrefill) {
  const size_t p = LongestPrompt();
  std::vector<int32_t> ids = PromptIds(p);
  const int t = static_cast<int>(ids.size());
  BlockTable table;
  Tensor last;
  for (int start = 0; start < t; start += 20) {
    const int len = std::min(20, t - start);
    StepPlan plan;
    plan.seqs.push_back(Seq(0, len, start + len, false, &table));
    plan.token_ids.assign(ids.begin() + start, ids.begin() + start + len);
    last = Run(*stage_, plan);
  }
  Tensor expected = ReferenceLogits(p);
  const float* last_row = expected.data<float>() + (t - 1) * config_.vocab_size;
  for (int v = 0; v < config_.vocab_size; ++v) ASSERT_NEAR(last.data<float>()[v], last_row[v], 1e-4f) << v;
}

// gpt2-mini and llama-mini come with the project's fixtures; the arch/ ones
// (tests/data/arch/make_arch_fixtures.py) add Qwen2's q/k/v biases,
// Mistral's sliding window (8, shorter than the prompts) and Llama 3.1's
// RoPE scaling with an explicit head_dim and untied embeddings.
INSTANTIATE_TEST_SUITE_P(Models, FixtureForwardTest,
                         ::testing::Values("gpt2-mini", "llama-mini", "arch/qwen2-tiny", "arch/mistral-tiny",
                                           "arch/llama31-tiny"),
                         [](const auto& info) {
                           std::string name = info.param.substr(info.param.find('/') + 1);
                           name = name.substr(0, name.find('-'));
                           return name;
                         });

}  // namespace
}  // namespace baton
