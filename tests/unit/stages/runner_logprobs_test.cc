// Logprobs, chunked prefill and resumed sampling through the real model:
// LocalRunner's logprobs against a double log_softmax of independently
// computed logits (transformers' reference, a one-shot forward), and a
// two-stage PipelineRunner (ranks as threads over a loopback communicator)
// returning exactly what LocalRunner returns, with steps in flight.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <thread>

#include "runtime/backend/cpu/cpu_backend.h"
#include "runtime/checkpoint/checkpoint.h"
#include "stages/local_runner.h"
#include "stages/pipeline_runner.h"
#include "tests/test_data.h"
#include "tests/unit/stages/loopback_communicator.h"

namespace baton {
namespace {

constexpr int kBlocksPerSeq = 4;  // 64 tokens of 16
constexpr int kDecodeSteps = 6;

// double log_softmax of one float row.
std::vector<double> LogSoftmax(const float* row, int64_t n) {
  double max = row[0];
  for (int64_t i = 1; i < n; ++i) max = std::max(max, static_cast<double>(row[i]));
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(row[i]) - max);
  std::vector<double> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<double>(row[i]) - max - std::log(sum);
  return out;
}

// One sequence of a scripted generation.
struct Script {
  int64_t id = 0;
  std::vector<int32_t> prompt;
  SamplingParams sampling;
  int32_t logprobs = -1;
  int first_chunk = 0;  // > 0: prefill the prompt in two chunks, this long first
  // What came back for each step that sampled.
  std::vector<int32_t> tokens;
  std::vector<TokenLogprobs> logprobs_out;
  int cached = 0;  // tokens already in the KV cache
  bool chunk_step_seen = false;
};

class RunnerLogprobsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_dir_ = testing::TestDataPath("gpt2-mini");
    reference_ = testing::LoadTestJson("gpt2-mini/reference.json");
    auto config = LoadModelConfig(model_dir_);
    ASSERT_TRUE(config.ok()) << config.status().ToString();
    config_ = *config;
  }

  std::unique_ptr<Stage> LoadStage(Backend& backend, StageRange range, int num_seqs) {
    StageOptions options;
    options.range = range;
    options.num_kv_blocks = kBlocksPerSeq * num_seqs;
    auto stage = Stage::Load(model_dir_, config_, options, backend);
    EXPECT_TRUE(stage.ok()) << stage.status().ToString();
    return stage.ok() ? std::move(stage).value() : nullptr;
  }

  std::vector<int32_t> Prompt(size_t i) { return reference_["prompts"][i]["ids"].get<std::vector<int32_t>>(); }

  // Two groups of sequences, each its own micro-batch, submitted together
  // (two steps in flight) and collected in order. Prefill (maybe chunked),
  // then kDecodeSteps tokens each.
  static void Run(ModelRunner& runner, std::vector<std::vector<Script>>& groups) {
    bool busy = true;
    while (busy) {
      busy = false;
      std::vector<StepPlan> plans;
      for (size_t g = 0; g < groups.size(); ++g) {
        StepPlan plan;
        plan.micro_batch = static_cast<int32_t>(g);
        for (Script& s : groups[g]) {
          if (static_cast<int>(s.tokens.size()) >= kDecodeSteps) continue;
          std::vector<int32_t> all = s.prompt;
          all.insert(all.end(), s.tokens.begin(), s.tokens.end());
          SequenceStep step;
          step.seq_id = s.id;
          step.context_len = static_cast<int32_t>(all.size());
          if (s.cached == 0) {
            step.has_sampling = true;
            step.sampling = s.sampling;
            step.logprobs = s.logprobs;
            if (s.first_chunk > 0) {
              step.context_len = s.first_chunk;
              step.sample = false;
            }
          }
          step.num_new_tokens = step.context_len - s.cached;
          for (int b = 0; b < kBlocksPerSeq; ++b)
            step.block_table.push_back(static_cast<int32_t>(s.id) * kBlocksPerSeq + b);
          plan.token_ids.insert(plan.token_ids.end(), all.begin() + s.cached, all.begin() + step.context_len);
          plan.seqs.push_back(step);
        }
        if (!plan.seqs.empty()) {
          ASSERT_TRUE(runner.Submit(plan).ok());
          plans.push_back(plan);
          busy = true;
        }
      }
      for (const StepPlan& plan : plans) {
        auto out = runner.Collect();
        ASSERT_TRUE(out.ok()) << out.status().ToString();
        ASSERT_EQ(out->tokens.size(), plan.seqs.size());
        auto& group = groups[static_cast<size_t>(plan.micro_batch)];
        bool any_logprobs = false;
        for (size_t i = 0; i < plan.seqs.size(); ++i) {
          Script* s = nullptr;
          for (Script& c : group) s = c.id == plan.seqs[i].seq_id ? &c : s;
          s->cached = plan.seqs[i].context_len;
          if (!plan.seqs[i].sample) {
            EXPECT_EQ(out->tokens[i], -1) << "a chunk that is not the prompt's last samples nothing";
            s->chunk_step_seen = true;
            continue;
          }
          s->tokens.push_back(out->tokens[i]);
          any_logprobs |= s->logprobs >= 0;
          if (s->logprobs >= 0) {
            ASSERT_EQ(out->logprobs.size(), plan.seqs.size());
            s->logprobs_out.push_back(out->logprobs[i]);
          }
        }
        EXPECT_EQ(out->logprobs.empty(), !any_logprobs);
      }
    }
  }

  // The mixed batch both runners play.
  std::vector<std::vector<Script>> MixedGroups() {
    SamplingParams greedy;
    greedy.temperature = 0.0f;
    SamplingParams warm;
    warm.temperature = 0.8f;
    warm.top_k = 40;
    warm.repetition_penalty = 1.1f;
    std::vector<std::vector<Script>> groups(2);
    for (size_t p = 0; p < 6; ++p) {
      Script s;
      s.id = static_cast<int64_t>(p);
      s.prompt = Prompt(p);
      s.sampling = p % 3 == 0 ? greedy : warm;
      s.sampling.seed = 100 + p;
      if (p < 3) s.logprobs = p == 1 ? -1 : static_cast<int32_t>(5 * p);  // group 0: 0, -1, 10
      if (p == 2 || p == 5) s.first_chunk = static_cast<int>(s.prompt.size()) / 2;
      groups[p / 3].push_back(s);
    }
    return groups;
  }

  std::string model_dir_;
  nlohmann::json reference_;
  ModelConfig config_;
};

TEST_F(RunnerLogprobsTest, LocalRunnerLogprobsAreTheLogSoftmaxOfTheModelsLogits) {
  CpuBackend backend(2);
  auto stage = LoadStage(backend, {}, 1);
  ASSERT_NE(stage, nullptr);
  LocalRunner runner(*stage);
  std::vector<std::vector<Script>> groups(1);
  Script s;
  s.prompt = Prompt(0);
  s.sampling.temperature = 0.0f;
  s.logprobs = 5;
  groups[0].push_back(s);
  Run(runner, groups);
  const Script& done = groups[0][0];
  const auto greedy = reference_["prompts"][0]["greedy"].get<std::vector<int32_t>>();
  ASSERT_EQ(done.tokens, std::vector<int32_t>(greedy.begin(), greedy.begin() + kDecodeSteps));
  ASSERT_EQ(done.logprobs_out.size(), static_cast<size_t>(kDecodeSteps));

  // Step 1 against transformers' logits of the prompt's last position.
  auto ref = Checkpoint::OpenFile(testing::TestDataPath("gpt2-mini/reference.safetensors"));
  ASSERT_TRUE(ref.ok());
  const int64_t t = static_cast<int64_t>(s.prompt.size()), vocab = config_.vocab_size;
  auto ref_logits = ref->GetF32("logits.0", {t, vocab});
  ASSERT_TRUE(ref_logits.ok());
  std::vector<std::vector<double>> expected = {LogSoftmax(ref_logits->data<float>() + (t - 1) * vocab, vocab)};
  // Later steps against one full forward of prompt + generated tokens.
  auto whole = LoadStage(backend, {}, 1);
  StepPlan plan;
  SequenceStep step;
  step.context_len = step.num_new_tokens = static_cast<int32_t>(t) + kDecodeSteps - 1;
  step.all_logits = true;
  step.block_table = {0, 1, 2, 3};
  plan.seqs = {step};
  plan.token_ids = s.prompt;
  plan.token_ids.insert(plan.token_ids.end(), done.tokens.begin(), done.tokens.end() - 1);
  plan.return_logits = true;
  auto logits = whole->Forward(plan);
  ASSERT_TRUE(logits.ok()) << logits.status().ToString();
  for (int k = 1; k < kDecodeSteps; ++k) {
    expected.push_back(LogSoftmax(logits->data<float>() + (t - 1 + k) * vocab, vocab));
  }
  for (int k = 0; k < kDecodeSteps; ++k) {
    const TokenLogprobs& got = done.logprobs_out[k];
    const std::vector<double>& want = expected[k];
    EXPECT_NEAR(got.logprob, want[done.tokens[k]], 2e-4) << "step " << k;
    ASSERT_EQ(got.top.size(), 5u);
    EXPECT_EQ(got.top[0].first, done.tokens[k]) << "greedy picks the most likely";
    EXPECT_EQ(got.top[0].second, got.logprob);
    for (size_t j = 0; j < got.top.size(); ++j) {
      EXPECT_NEAR(got.top[j].second, want[got.top[j].first], 2e-4) << "step " << k << " rank " << j;
      int above = 0;  // tokens the reference ranks above this one
      for (int64_t v = 0; v < vocab; ++v) above += want[v] > want[got.top[j].first] + 1e-4;
      EXPECT_LE(above, static_cast<int>(j)) << "step " << k << " rank " << j;
    }
  }
}

TEST_F(RunnerLogprobsTest, ChunkedPrefillSamplesWhatOneShotPrefillSamples) {
  CpuBackend backend(2);
  auto run = [&](int first_chunk) {
    auto stage = LoadStage(backend, {}, 1);
    LocalRunner runner(*stage);
    std::vector<std::vector<Script>> groups(1);
    Script s;
    s.prompt = Prompt(1);
    s.sampling.temperature = 0.9f;
    s.sampling.repetition_penalty = 1.3f;  // the first chunk must be in the history
    s.sampling.seed = 5;
    s.logprobs = 3;
    s.first_chunk = first_chunk;
    groups[0].push_back(s);
    Run(runner, groups);
    EXPECT_EQ(groups[0][0].chunk_step_seen, first_chunk > 0);
    return groups[0][0];
  };
  const Script one_shot = run(0), chunked = run(20);
  EXPECT_EQ(chunked.tokens, one_shot.tokens);
  ASSERT_EQ(chunked.logprobs_out.size(), one_shot.logprobs_out.size());
  for (size_t k = 0; k < chunked.logprobs_out.size(); ++k) {
    EXPECT_NEAR(chunked.logprobs_out[k].logprob, one_shot.logprobs_out[k].logprob, 1e-4) << k;
  }
}

TEST_F(RunnerLogprobsTest, PipelineReturnsWhatLocalRunnerReturns) {
  auto local_groups = MixedGroups();
  {
    CpuBackend backend(1);
    auto stage = LoadStage(backend, {}, 6);
    ASSERT_NE(stage, nullptr);
    LocalRunner runner(*stage);
    Run(runner, local_groups);
  }
  auto pipe_groups = MixedGroups();
  auto hub = std::make_shared<testing::LoopbackHub>();
  testing::LoopbackCommunicator comm0(hub, 0, 2), comm1(hub, 1, 2);
  CpuBackend backend0(1), backend1(1);
  const int split = config_.num_layers / 2;
  auto first = LoadStage(backend0, {0, split}, 6);
  auto last = LoadStage(backend1, {split, config_.num_layers}, 6);
  ASSERT_NE(first, nullptr);
  ASSERT_NE(last, nullptr);
  Status worker_status;
  std::thread worker([&] { worker_status = RunPipelineWorker(*last, comm1); });
  {
    PipelineRunner runner(*first, comm0);
    Run(runner, pipe_groups);
    EXPECT_TRUE(runner.Shutdown().ok());
  }
  worker.join();
  EXPECT_TRUE(worker_status.ok()) << worker_status.ToString();

  for (size_t g = 0; g < 2; ++g) {
    for (size_t i = 0; i < 3; ++i) {
      const Script& a = local_groups[g][i];
      const Script& b = pipe_groups[g][i];
      EXPECT_EQ(b.tokens, a.tokens) << "sequence " << a.id;
      ASSERT_EQ(b.logprobs_out.size(), a.logprobs_out.size()) << "sequence " << a.id;
      if (a.logprobs >= 0) {
        EXPECT_EQ(a.logprobs_out.size(), static_cast<size_t>(kDecodeSteps));
      }
      for (size_t k = 0; k < a.logprobs_out.size(); ++k) {
        EXPECT_NEAR(b.logprobs_out[k].logprob, a.logprobs_out[k].logprob, 1e-5);
        ASSERT_EQ(b.logprobs_out[k].top.size(), static_cast<size_t>(a.logprobs));
        for (size_t j = 0; j < b.logprobs_out[k].top.size(); ++j) {
          EXPECT_EQ(b.logprobs_out[k].top[j].first, a.logprobs_out[k].top[j].first);
          EXPECT_NEAR(b.logprobs_out[k].top[j].second, a.logprobs_out[k].top[j].second, 1e-5);
        }
      }
    }
  }
}

}  // namespace
}  // namespace baton
