// The whole model on the CUDA backend against transformers' float32
// reference (tests/data/*-mini/reference.{json,safetensors}): in F32 mode
// (no TF32) every logit within 1e-3 and greedy generation identical to the
// fixture; in BF16 every row's logits with cosine >= 0.999 to the reference
// and the same top-1 token wherever the reference's top-2 margin exceeds
// 0.05. Skips without a GPU.
//
// The data folder is BATON_TEST_DATA (the source tree's tests/data when
// built), or the environment variable BATON_TEST_DATA when set, so binaries
// built here run from another checkout on the GPU machine.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "runtime/backend/cuda/make_cuda_backend.h"
#include "runtime/checkpoint/checkpoint.h"
#include "runtime/serving/generator.h"
#include "stages/model_session.h"
#include "tests/unit/stages/counting_runner.h"

namespace baton {
namespace {

std::string DataPath(const std::string& relative) {
  const char* env = std::getenv("BATON_TEST_DATA");
  return std::string(env != nullptr && *env != '\0' ? env : BATON_TEST_DATA) + "/" + relative;
}

nlohmann::json LoadJson(const std::string& relative) {
  std::ifstream in(DataPath(relative));
  EXPECT_TRUE(in.good()) << "cannot open " << DataPath(relative);
  return in ? nlohmann::json::parse(in) : nlohmann::json::object();
}

// A CUDA session on the fixture model: an explicit small KV cache, or
// (kv_bytes == 0) the cache sized from free GPU memory as the CLI does.
std::unique_ptr<ModelSession> OpenOnGpu(const std::string& model, DType dtype, size_t kv_bytes) {
  SessionOptions options;
  options.model_dir = DataPath(model);
  options.device = Device::kCuda;
  options.dtype = dtype;
  options.kv_cache_bytes = kv_bytes;
  auto s = ModelSession::Open(options);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(s).value() : nullptr;
}

class GpuModelTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (CudaDeviceCount() == 0) GTEST_SKIP() << "no CUDA GPU visible";
    reference_ = LoadJson(GetParam() + "/reference.json");
    ASSERT_TRUE(reference_.contains("prompts"));
  }

  std::vector<int32_t> PromptIds(size_t i) const { return reference_["prompts"][i]["ids"].get<std::vector<int32_t>>(); }
  size_t num_prompts() const { return reference_["prompts"].size(); }

  // Every prompt, greedy, for as many tokens as the fixture's greedy ids.
  std::vector<GenerationRequest> GreedyRequests() const {
    std::vector<GenerationRequest> requests;
    for (size_t p = 0; p < num_prompts(); ++p) {
      GenerationRequest r;
      r.prompt_ids = PromptIds(p);
      r.max_new_tokens = static_cast<int>(reference_["prompts"][p]["greedy"].size());
      r.ignore_eos = true;
      r.sampling.temperature = 0;
      requests.push_back(r);
    }
    return requests;
  }

  Tensor ReferenceLogits(size_t prompt, int64_t vocab) const {
    auto ref = Checkpoint::OpenFile(DataPath(GetParam() + "/reference.safetensors"));
    EXPECT_TRUE(ref.ok()) << ref.status().ToString();
    if (!ref.ok()) return Tensor();
    const int64_t t = static_cast<int64_t>(PromptIds(prompt).size());
    auto logits = ref->GetF32("logits." + std::to_string(prompt), {t, vocab});
    EXPECT_TRUE(logits.ok()) << logits.status().ToString();
    return logits.ok() ? *logits : Tensor();
  }

  // Every prompt's full logits from one prefill each on `session`'s stage.
  Tensor PromptLogits(ModelSession& session, size_t prompt) const {
    const std::vector<int32_t> ids = PromptIds(prompt);
    const int t = static_cast<int>(ids.size());
    StepPlan plan;
    SequenceStep s;
    s.num_new_tokens = t;
    s.context_len = t;
    s.all_logits = true;
    for (int b = 0; b * plan.block_size < t; ++b) s.block_table.push_back(b);
    plan.seqs.push_back(s);
    plan.token_ids = ids;
    auto logits = session.stage().Forward(plan);
    EXPECT_TRUE(logits.ok()) << logits.status().ToString();
    return logits.ok() ? *logits : Tensor();
  }

  nlohmann::json reference_;
};

TEST_P(GpuModelTest, F32LogitsOfEveryPromptWithin1e3) {
  auto session = OpenOnGpu(GetParam(), DType::kF32, size_t{16} << 20);
  ASSERT_NE(session, nullptr);
  ASSERT_EQ(session->backend().device(), Device::kCuda);
  const int64_t vocab = session->config().vocab_size;
  for (size_t p = 0; p < num_prompts(); ++p) {
    Tensor expected = ReferenceLogits(p, vocab);
    Tensor got = PromptLogits(*session, p);
    ASSERT_TRUE(expected.defined() && got.defined());
    ASSERT_EQ(got.shape(), expected.shape());
    float max_err = 0;
    for (int64_t i = 0; i < got.numel(); ++i) {
      max_err = std::max(max_err, std::fabs(got.data<float>()[i] - expected.data<float>()[i]));
    }
    std::printf("  [%s F32] prompt %zu: max |logit - reference| = %.3e\n", GetParam().c_str(), p, max_err);
    EXPECT_LE(max_err, 1e-3f) << GetParam() << " prompt " << p;
  }
}

TEST_P(GpuModelTest, Bf16CosineAndTop1WhereTheMarginIsClear) {
  auto session = OpenOnGpu(GetParam(), DType::kBF16, size_t{16} << 20);
  ASSERT_NE(session, nullptr);
  const int64_t vocab = session->config().vocab_size;
  double worst_cos = 1.0;
  int checked_top1 = 0;
  for (size_t p = 0; p < num_prompts(); ++p) {
    Tensor expected = ReferenceLogits(p, vocab);
    Tensor got = PromptLogits(*session, p);
    ASSERT_TRUE(expected.defined() && got.defined());
    ASSERT_EQ(got.shape(), expected.shape());
    for (int64_t r = 0; r < got.dim(0); ++r) {
      const float* g = got.data<float>() + r * vocab;
      const float* e = expected.data<float>() + r * vocab;
      double dot = 0, gg = 0, ee = 0;
      for (int64_t v = 0; v < vocab; ++v) {
        dot += static_cast<double>(g[v]) * e[v];
        gg += static_cast<double>(g[v]) * g[v];
        ee += static_cast<double>(e[v]) * e[v];
      }
      const double cos = dot / std::sqrt(gg * ee);
      worst_cos = std::min(worst_cos, cos);
      EXPECT_GE(cos, 0.999) << GetParam() << " prompt " << p << " row " << r;
      // Reference top-2 margin: only where it is clear must bf16 agree.
      const int64_t top = std::max_element(e, e + vocab) - e;
      float second = -INFINITY;
      for (int64_t v = 0; v < vocab; ++v) {
        if (v != top) second = std::max(second, e[v]);
      }
      if (e[top] - second > 0.05f) {
        ++checked_top1;
        EXPECT_EQ(std::max_element(g, g + vocab) - g, top) << GetParam() << " prompt " << p << " row " << r;
      }
    }
  }
  std::printf("  [%s BF16] worst row cosine %.6f, top-1 checked on %d rows\n", GetParam().c_str(), worst_cos,
              checked_top1);
  EXPECT_GT(checked_top1, 0);
}

// Through the Generator (all prompts in one ragged batch, then paged
// decode), with the KV cache sized from free memory as `baton` does.
TEST_P(GpuModelTest, F32GreedyGenerationEqualsReference) {
  auto session = OpenOnGpu(GetParam(), DType::kF32, /*kv_bytes=*/0);
  ASSERT_NE(session, nullptr);
  std::printf("  [%s F32] KV cache sized from free memory: %d blocks, %.1f GB\n", GetParam().c_str(),
              session->blocks().num_blocks(), session->stage().kv_cache_bytes() / 1e9);
  EXPECT_GT(session->stage().kv_cache_bytes(), size_t{1} << 30);  // a real GPU leaves gigabytes
  const std::vector<GenerationRequest> requests = GreedyRequests();
  Generator generator(session->runner(), session->tokenizer(), session->blocks());
  auto results = generator.Generate(requests);
  ASSERT_TRUE(results.ok()) << results.status().ToString();
  for (size_t p = 0; p < num_prompts(); ++p) {
    EXPECT_EQ((*results)[p].output_ids, reference_["prompts"][p]["greedy"].get<std::vector<int32_t>>())
        << GetParam() << " prompt " << p;
  }
}

// The scheduler's run-ahead on the GPU, where each continuing step takes
// its tokens from the step before's ids on the device: every prompt alone
// (decode graphs), all together, and mixed sampling, stop strings and a
// repetition penalty give what they give without run-ahead.
TEST_P(GpuModelTest, RunAheadGenerationEqualsGenerationWithoutIt) {
  auto session = OpenOnGpu(GetParam(), DType::kF32, size_t{256} << 20);
  ASSERT_NE(session, nullptr);
  ASSERT_TRUE(session->runner().can_run_ahead());
  std::vector<GenerationRequest> greedy = GreedyRequests();
  std::vector<GenerationRequest> mixed;
  for (size_t p = 0; p < num_prompts(); ++p) {
    GenerationRequest r = greedy[p];
    r.sampling.temperature = 0.8f;
    r.sampling.top_k = 20;
    r.sampling.seed = 7 + p;
    r.sampling.repetition_penalty = p % 2 == 0 ? 1.0f : 1.2f;
    if (p % 3 == 0) r.stop = {"the"};
    mixed.push_back(r);
  }
  auto generate = [&](const std::vector<GenerationRequest>& requests, bool run_ahead, int* continuations) {
    testing::CountingRunner counting(session->runner());
    Generator generator(counting, session->tokenizer(), session->blocks(), SchedulerOptions{.run_ahead = run_ahead});
    auto results = generator.Generate(requests);
    EXPECT_TRUE(results.ok()) << results.status().ToString();
    if (continuations != nullptr) *continuations += counting.continuations;
    return results.ok() ? std::move(results).value() : std::vector<GenerationResult>{};
  };
  int continuations = 0;
  for (size_t p = 0; p < num_prompts(); ++p) {
    const auto alone = generate({greedy[p]}, true, &continuations);
    ASSERT_EQ(alone.size(), 1u);
    EXPECT_EQ(alone[0].output_ids, reference_["prompts"][p]["greedy"].get<std::vector<int32_t>>()) << p;
  }
  EXPECT_GT(continuations, 0);
  EXPECT_GT(session->stage().graph_replays(), 0);
  for (const auto* requests : {&greedy, &mixed}) {
    const auto ahead = generate(*requests, true, nullptr);
    const auto plain = generate(*requests, false, nullptr);
    ASSERT_EQ(ahead.size(), requests->size());
    ASSERT_EQ(plain.size(), requests->size());
    for (size_t i = 0; i < ahead.size(); ++i) {
      EXPECT_EQ(ahead[i].output_ids, plain[i].output_ids) << GetParam() << " request " << i;
      EXPECT_EQ(ahead[i].finish_reason, plain[i].finish_reason) << GetParam() << " request " << i;
    }
  }
  EXPECT_EQ(session->blocks().num_used_blocks(), 0);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GpuModelTest, ::testing::Values("gpt2-mini", "llama-mini"),
                         [](const auto& info) { return info.param.substr(0, info.param.find('-')); });

}  // namespace
}  // namespace baton
