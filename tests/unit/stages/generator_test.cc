// The generation loop: batched generation equals one request at a time,
// a KV cache too small for everyone at once still serves everyone, and
// bad requests are refused before any work.
#include "runtime/serving/generator.h"

#include <gtest/gtest.h>

#include "stages/model_session.h"
#include "tests/test_data.h"
#include "tests/unit/stages/mini_session.h"

namespace baton {
namespace {

using testing::OpenMini;

std::vector<GenerationRequest> FixtureRequests(const std::string& name, float temperature) {
  const auto ref = testing::LoadTestJson(name + "/reference.json");
  std::vector<GenerationRequest> requests;
  uint64_t seed = 11;
  for (const auto& p : ref["prompts"]) {
    GenerationRequest r;
    r.prompt_ids = p["ids"].get<std::vector<int32_t>>();
    r.max_new_tokens = 24;
    r.ignore_eos = true;
    r.sampling.temperature = temperature;
    r.sampling.top_k = 40;
    r.sampling.seed = seed++;
    requests.push_back(r);
  }
  return requests;
}

TEST(Generator, GreedyBatchMatchesReferenceAndSingleRuns) {
  auto session = OpenMini("llama-mini", size_t{64} << 20);
  const auto ref = testing::LoadTestJson("llama-mini/reference.json");
  auto requests = FixtureRequests("llama-mini", 0.0f);
  Generator gen(session->runner(), session->tokenizer(), session->blocks());
  auto batch = gen.Generate(requests);
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  for (size_t i = 0; i < requests.size(); ++i) {
    EXPECT_EQ((*batch)[i].output_ids, ref["prompts"][i]["greedy"].get<std::vector<int32_t>>()) << i;
    EXPECT_EQ((*batch)[i].text, ref["prompts"][i]["greedy_text"].get<std::string>()) << i;
    EXPECT_EQ((*batch)[i].finish_reason, FinishReason::kLength);
  }
}

TEST(Generator, SampledBatchEqualsEachRequestAloneEvenWhenTheCacheForcesWaves) {
  auto big = OpenMini("gpt2-mini", size_t{64} << 20);
  auto requests = FixtureRequests("gpt2-mini", 0.9f);
  Generator together(big->runner(), big->tokenizer(), big->blocks());
  auto all = together.Generate(requests);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  // Room for about one request at a time: 4 blocks of 16 tokens.
  const size_t per_block = 2 * 128 * 4 * 4 * 16;  // K+V, hidden 128, f32, 4 layers, 16 tokens
  auto small = OpenMini("gpt2-mini", 5 * per_block);
  Generator waves(small->runner(), small->tokenizer(), small->blocks());
  auto streamed = std::vector<std::string>(requests.size());
  auto waved = waves.Generate(requests, [&](size_t i, int32_t, const std::string& d) { streamed[i] += d; });
  ASSERT_TRUE(waved.ok()) << waved.status().ToString();
  for (size_t i = 0; i < requests.size(); ++i) {
    auto alone = together.Generate({requests[i]});
    ASSERT_TRUE(alone.ok());
    EXPECT_EQ((*all)[i].output_ids, (*alone)[0].output_ids) << i;
    EXPECT_EQ((*waved)[i].output_ids, (*alone)[0].output_ids) << i;
    EXPECT_EQ(streamed[i], (*waved)[i].text) << i;
  }
  EXPECT_EQ(small->blocks().num_free_blocks(), small->blocks().num_blocks());  // everything released
}

TEST(Generator, RejectsBadRequestsBeforeRunningAnything) {
  auto session = OpenMini("gpt2-mini", size_t{8} << 20);
  Generator gen(session->runner(), session->tokenizer(), session->blocks());
  GenerationRequest good;
  good.prompt_ids = {1, 2, 3};
  auto expect_bad = [&](GenerationRequest r, const std::string& needle) {
    auto out = gen.Generate({good, r});
    ASSERT_FALSE(out.ok());
    EXPECT_NE(out.status().message().find(needle), std::string::npos) << out.status().ToString();
    EXPECT_EQ(out.status().ExitCode(), 2);
  };
  GenerationRequest r = good;
  r.prompt_ids = {};
  expect_bad(r, "empty");
  r = good;
  r.prompt_ids = {1, 2048};
  expect_bad(r, "2048");
  r = good;
  r.max_new_tokens = 600;
  expect_bad(r, "context");
  r = good;
  r.sampling.top_p = 0;
  expect_bad(r, "top_p");
  r = good;
  r.stop = {"ok", ""};
  expect_bad(r, "stop[1]");
  EXPECT_EQ(session->blocks().num_free_blocks(), session->blocks().num_blocks());
}

}  // namespace
}  // namespace baton
