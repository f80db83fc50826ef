// The stage-to-stage messages: a StepPlan survives encoding field for field
// (the sampling fields of registering steps included), a sampled step's
// answer carries logprobs only when some sequence has them, and corrupt
// bytes are refused. Also ValidateStepPlan's checks of those fields.
#include "stages/step_plan_codec.h"

#include <gtest/gtest.h>

#include "stages/sampled_step_codec.h"

namespace baton {
namespace {

StepPlan SamplePlan() {
  StepPlan plan;
  plan.block_size = 16;
  plan.micro_batch = 3;
  SequenceStep a;
  a.seq_id = (int64_t{1} << 40) + 7;  // needs both words
  a.num_new_tokens = 3;
  a.context_len = 20;
  a.block_table = {4, 9};
  a.all_logits = true;
  a.has_sampling = true;
  a.sampling.temperature = 0.7f;
  a.sampling.top_k = 40;
  a.sampling.top_p = 0.9f;
  a.sampling.min_p = 0.05f;
  a.sampling.repetition_penalty = 1.3f;
  a.sampling.seed = 0xDEADBEEFCAFEull;
  a.logprobs = 5;
  a.sampler_draws_done = 123;
  a.sample = false;
  SequenceStep b;
  b.seq_id = 2;
  b.num_new_tokens = 1;
  b.context_len = 1;
  b.block_table = {0};
  b.logprobs = 0;  // meaningless without has_sampling: not sent
  plan.seqs = {a, b};
  plan.token_ids = {5, 6, 7, 8};
  plan.released_seqs = {11, -1};
  plan.stage_busy_us = {int64_t{1} << 33, 5};
  return plan;
}

TEST(StepPlanCodec, RoundTripKeepsEveryField) {
  const StepPlan plan = SamplePlan();
  auto decoded = DecodeStepPlan(EncodeStepPlan(plan));
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(decoded->block_size, 16);
  EXPECT_EQ(decoded->micro_batch, 3);
  ASSERT_EQ(decoded->seqs.size(), 2u);
  const SequenceStep& a = decoded->seqs[0];
  EXPECT_EQ(a.seq_id, plan.seqs[0].seq_id);
  EXPECT_EQ(a.num_new_tokens, 3);
  EXPECT_EQ(a.context_len, 20);
  EXPECT_EQ(a.block_table, (BlockTable{4, 9}));
  EXPECT_TRUE(a.all_logits);
  EXPECT_TRUE(a.has_sampling);
  EXPECT_EQ(a.sampling.temperature, 0.7f);
  EXPECT_EQ(a.sampling.top_k, 40);
  EXPECT_EQ(a.sampling.top_p, 0.9f);
  EXPECT_EQ(a.sampling.min_p, 0.05f);
  EXPECT_EQ(a.sampling.repetition_penalty, 1.3f);
  EXPECT_EQ(a.sampling.seed, 0xDEADBEEFCAFEull);
  EXPECT_EQ(a.logprobs, 5);
  EXPECT_EQ(a.sampler_draws_done, 123);
  EXPECT_FALSE(a.sample);
  const SequenceStep& b = decoded->seqs[1];
  EXPECT_FALSE(b.has_sampling);
  EXPECT_TRUE(b.sample);
  EXPECT_EQ(b.logprobs, -1) << "only registering steps carry logprobs";
  EXPECT_EQ(decoded->token_ids, plan.token_ids);
  EXPECT_FALSE(decoded->return_logits);
  EXPECT_EQ(decoded->released_seqs, plan.released_seqs);
  EXPECT_EQ(decoded->stage_busy_us, plan.stage_busy_us);
}

TEST(StepPlanCodec, RefusesTruncatedOrForeignBytes) {
  std::vector<uint8_t> bytes = EncodeStepPlan(SamplePlan());
  for (size_t cut : {size_t{1}, size_t{4}, size_t{12}, bytes.size() / 2}) {
    std::vector<uint8_t> truncated(bytes.begin(), bytes.end() - static_cast<int64_t>(cut));
    EXPECT_EQ(DecodeStepPlan(truncated).status().code(), StatusCode::kDataLoss) << cut;
  }
  bytes[0] ^= 1;  // another version's marker
  EXPECT_EQ(DecodeStepPlan(bytes).status().code(), StatusCode::kDataLoss);
}

TEST(SampledStepCodec, TokensCostFourBytesEachAfterTheBusyTimes) {
  StepOutput out;
  out.tokens = {3, -1, 2047};
  out.stage_busy_us = {123456789012, 42};
  const std::vector<uint8_t> bytes = EncodeSampledStep(out);
  EXPECT_EQ(bytes.size(), 4u + 2 * 8u + 12u);
  auto decoded = DecodeSampledStep(bytes, 3);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(decoded->tokens, out.tokens);
  EXPECT_EQ(decoded->stage_busy_us, out.stage_busy_us);
  EXPECT_TRUE(decoded->logprobs.empty());
}

TEST(SampledStepCodec, LogprobsRoundTripExactly) {
  StepOutput out;
  out.tokens = {3, 8, -1};
  out.logprobs.resize(3);
  out.logprobs[0].logprob = -0.125f;
  out.logprobs[0].top = {{3, -0.125f}, {17, -2.5f}, {4, -INFINITY}};
  out.logprobs[1].logprob = -1e-7f;  // asked for 0 alternatives
  // [2]: a sequence that did not ask (default entry)
  auto decoded = DecodeSampledStep(EncodeSampledStep(out), 3);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(decoded->tokens, out.tokens);
  ASSERT_EQ(decoded->logprobs.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(decoded->logprobs[i].logprob, out.logprobs[i].logprob) << i;
    EXPECT_EQ(decoded->logprobs[i].top, out.logprobs[i].top) << i;
  }
}

TEST(SampledStepCodec, RefusesBytesThatDoNotFitTheStep) {
  StepOutput out;
  out.tokens = {1, 2};
  out.logprobs.resize(2);
  out.logprobs[0].top = {{1, -0.5f}};
  const std::vector<uint8_t> bytes = EncodeSampledStep(out);
  EXPECT_EQ(DecodeSampledStep(bytes, 3).status().code(), StatusCode::kDataLoss) << "more sequences than sent";
  EXPECT_EQ(DecodeSampledStep(bytes, 1).status().code(), StatusCode::kDataLoss) << "fewer sequences than sent";
  std::vector<uint8_t> truncated(bytes.begin(), bytes.end() - 4);
  EXPECT_EQ(DecodeSampledStep(truncated, 2).status().code(), StatusCode::kDataLoss);
}

TEST(ValidateStepPlan, ChecksTheSamplingFieldsOfRegisteringSteps) {
  ModelConfig config;
  config.vocab_size = 100;
  config.max_positions = 64;
  StepPlan plan = SamplePlan();
  plan.seqs[0].context_len = 3;  // fits the model
  plan.seqs[0].block_table = {4};
  ASSERT_TRUE(ValidateStepPlan(plan, config).ok()) << ValidateStepPlan(plan, config).ToString();
  for (int32_t bad : {-2, kMaxLogprobs + 1}) {
    plan.seqs[0].logprobs = bad;
    Status s = ValidateStepPlan(plan, config);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(s.message().find("logprobs"), std::string::npos) << s.ToString();
  }
  plan.seqs[0].logprobs = kMaxLogprobs;
  EXPECT_TRUE(ValidateStepPlan(plan, config).ok());
  plan.seqs[0].sampler_draws_done = -1;
  EXPECT_NE(ValidateStepPlan(plan, config).message().find("sampler_draws_done"), std::string::npos);
  plan.seqs[0].sampler_draws_done = 0;
  plan.seqs[0].sampling.top_p = 0.0f;
  EXPECT_NE(ValidateStepPlan(plan, config).message().find("top_p"), std::string::npos);
}

}  // namespace
}  // namespace baton
