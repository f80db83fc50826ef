// SamplerBank on hand-made logits: logprobs are of the raw row whatever the
// sampling processors do, a non-sampling chunk still feeds the history, and
// a sequence re-registered with the draws it had made continues its stream.
#include "stages/sampler_bank.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace baton {
namespace {

constexpr int64_t kVocab = 12;

// Rows of pseudo-random logits, one per sequence of a step.
Tensor Logits(int64_t rows, uint64_t seed) {
  Tensor t = Tensor::Empty({rows, kVocab}, DType::kF32);
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<float> dist(-3.0f, 3.0f);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = dist(gen);
  return t;
}

SequenceStep Step(int64_t id, int32_t new_tokens) {
  SequenceStep s;
  s.seq_id = id;
  s.num_new_tokens = new_tokens;
  s.context_len = new_tokens;
  return s;
}

SequenceStep Register(int64_t id, int32_t new_tokens, SamplingParams params, int32_t logprobs) {
  SequenceStep s = Step(id, new_tokens);
  s.has_sampling = true;
  s.sampling = params;
  s.logprobs = logprobs;
  return s;
}

TEST(SamplerBank, LogprobsAreOfTheRawRowNotTheProcessedOne) {
  SamplingParams p;
  p.temperature = 0.5f;  // a processed distribution would differ a lot
  p.top_k = 3;
  p.repetition_penalty = 2.0f;
  p.seed = 9;
  StepPlan plan;
  plan.seqs = {Register(1, 2, p, 4), Register(2, 1, SamplingParams{}, -1)};
  plan.token_ids = {0, 1, 2};
  const Tensor logits = Logits(2, 1);
  SamplerBank bank;
  auto out = bank.Sample(plan, logits);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ASSERT_EQ(out->tokens.size(), 2u);
  ASSERT_EQ(out->logprobs.size(), 2u) << "one entry per sequence once any asked";
  // Reference: double log_softmax of row 0 as the model gave it.
  const float* row = logits.data<float>();
  double sum = 0;
  for (int64_t v = 0; v < kVocab; ++v) sum += std::exp(static_cast<double>(row[v]));
  auto ref = [&](int32_t id) { return static_cast<double>(row[id]) - std::log(sum); };
  const TokenLogprobs& lp = out->logprobs[0];
  EXPECT_NEAR(lp.logprob, ref(out->tokens[0]), 1e-6);
  ASSERT_EQ(lp.top.size(), 4u);
  for (size_t i = 0; i < lp.top.size(); ++i) {
    EXPECT_NEAR(lp.top[i].second, ref(lp.top[i].first), 1e-6);
    if (i > 0) {
      EXPECT_GT(lp.top[i - 1].second, lp.top[i].second);
    }
  }
  int better = 0;  // no token outside the top 4 beats the 4th
  for (int32_t v = 0; v < kVocab; ++v) better += row[v] > row[lp.top[3].first];
  EXPECT_EQ(better, 3);
  EXPECT_EQ(out->logprobs[1].logprob, 0.0f) << "sequence 2 did not ask";
  EXPECT_TRUE(out->logprobs[1].top.empty());

  // Later steps keep returning them without re-registering.
  StepPlan next;
  next.seqs = {Step(1, 1), Step(2, 1)};
  next.token_ids = {out->tokens[0], out->tokens[1]};
  auto again = bank.Sample(next, Logits(2, 2));
  ASSERT_TRUE(again.ok());
  ASSERT_EQ(again->logprobs.size(), 2u);
  EXPECT_EQ(again->logprobs[0].top.size(), 4u);
}

TEST(SamplerBank, NoLogprobsWhenNobodyAsks) {
  StepPlan plan;
  plan.seqs = {Register(1, 1, SamplingParams{}, -1)};
  plan.token_ids = {3};
  SamplerBank bank;
  auto out = bank.Sample(plan, Logits(1, 3));
  ASSERT_TRUE(out.ok());
  EXPECT_TRUE(out->logprobs.empty());
  // Zero alternatives still returns the token's own logprob.
  plan.seqs[0].logprobs = 0;
  out = bank.Sample(plan, Logits(1, 3));
  ASSERT_TRUE(out.ok());
  ASSERT_EQ(out->logprobs.size(), 1u);
  EXPECT_LT(out->logprobs[0].logprob, 0.0f);
  EXPECT_TRUE(out->logprobs[0].top.empty());
}

TEST(SamplerBank, ANonSamplingChunkFeedsTheHistoryButDrawsNothing) {
  // Greedy with a huge repetition penalty: the argmax of a row is avoided
  // only if the chunk that held it reached the history.
  SamplingParams p;
  p.temperature = 0.0f;
  p.repetition_penalty = 1000.0f;
  Tensor logits = Tensor::Empty({1, kVocab}, DType::kF32);
  for (int64_t v = 0; v < kVocab; ++v) logits.data<float>()[v] = v == 7 ? 5.0f : 1.0f + 0.01f * static_cast<float>(v);
  SamplerBank bank;
  StepPlan chunk;
  chunk.seqs = {Register(4, 2, p, 2)};
  chunk.seqs[0].sample = false;
  chunk.token_ids = {7, 0};
  auto first = bank.Sample(chunk, logits);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->tokens, std::vector<int32_t>{-1});
  EXPECT_TRUE(first->logprobs.empty()) << "nothing sampled, nothing to report";
  StepPlan last;
  last.seqs = {Step(4, 1)};
  last.token_ids = {1};
  auto second = bank.Sample(last, logits);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->tokens, std::vector<int32_t>{11}) << "7 was penalized by the first chunk; 0 and 1 too";
  ASSERT_EQ(second->logprobs.size(), 1u);
  EXPECT_EQ(second->logprobs[0].top[0].first, 7) << "raw distribution: 7 is still the most likely";
}

TEST(SamplerBank, ReRegisteringWithTheDrawsDoneContinuesTheStream) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.seed = 1234;
  const int kSteps = 30, kPreemptAt = 11;
  // Uninterrupted: register, then one token per step.
  SamplerBank bank;
  std::vector<int32_t> uninterrupted;
  std::vector<int32_t> history = {2, 3};
  for (int step = 0; step < kSteps; ++step) {
    StepPlan plan;
    plan.seqs = {step == 0 ? Register(5, 2, p, -1) : Step(5, 1)};
    plan.token_ids = step == 0 ? history : std::vector<int32_t>{history.back()};
    auto out = bank.Sample(plan, Logits(1, 100 + step));
    ASSERT_TRUE(out.ok());
    uninterrupted.push_back(out->tokens[0]);
    history.push_back(out->tokens[0]);
  }
  // Preempted after kPreemptAt tokens: released, then recomputed (prompt +
  // generated) under a new registration that skips the draws made.
  SamplerBank other;
  std::vector<int32_t> resumed(uninterrupted.begin(), uninterrupted.begin() + kPreemptAt);
  StepPlan recompute;
  recompute.seqs = {Register(5, 2 + kPreemptAt, p, -1)};
  recompute.seqs[0].sampler_draws_done = kPreemptAt;
  recompute.token_ids = {2, 3};
  recompute.token_ids.insert(recompute.token_ids.end(), resumed.begin(), resumed.end());
  recompute.released_seqs = {5};  // a stale entry would be dropped first
  auto out = other.Sample(recompute, Logits(1, 100 + kPreemptAt));
  ASSERT_TRUE(out.ok());
  resumed.push_back(out->tokens[0]);
  for (int step = kPreemptAt + 1; step < kSteps; ++step) {
    StepPlan plan;
    plan.seqs = {Step(5, 1)};
    plan.token_ids = {resumed.back()};
    out = other.Sample(plan, Logits(1, 100 + step));
    ASSERT_TRUE(out.ok());
    resumed.push_back(out->tokens[0]);
  }
  EXPECT_EQ(resumed, uninterrupted);

  // Without the skip the continuation differs (the test can fail).
  SamplerBank naive;
  recompute.seqs[0].sampler_draws_done = 0;
  std::vector<int32_t> restarted(uninterrupted.begin(), uninterrupted.begin() + kPreemptAt);
  out = naive.Sample(recompute, Logits(1, 100 + kPreemptAt));
  ASSERT_TRUE(out.ok());
  restarted.push_back(out->tokens[0]);
  for (int step = kPreemptAt + 1; step < kSteps; ++step) {
    StepPlan plan;
    plan.seqs = {Step(5, 1)};
    plan.token_ids = {restarted.back()};
    out = naive.Sample(plan, Logits(1, 100 + step));
    ASSERT_TRUE(out.ok());
    restarted.push_back(out->tokens[0]);
  }
  EXPECT_NE(restarted, uninterrupted);
}

}  // namespace
}  // namespace baton
