// FakeRunner: a ModelRunner whose "model" is a hash of the tokens it reads
// back from its own paged KV store, so any scheduling mistake (a wrong
// block table, a shared block overwritten, a token computed twice or
// skipped) changes the tokens it returns. It keeps a sampler entry per
// seq_id as the last pipeline stage does (registered by has_sampling,
// history of every plan token, dropped when released), makes one "random
// draw" per sampled token of a non-greedy sequence (skipping
// sampler_draws_done at registration), and checks each plan.
//
// Reference(...) computes what a request alone must produce, independently
// of any scheduling.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <deque>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "runtime/serving/generation_request.h"
#include "runtime/serving/model_runner.h"

namespace baton::testing {

inline uint64_t Mix64(uint64_t x) {
  x ^= x >> 31;
  x *= 0x7fb5d329728ea185ull;
  x ^= x >> 27;
  x *= 0x81dadef4bc2dd44dull;
  x ^= x >> 33;
  return x;
}

// The fake model's next token after `context`, at draw `draw` of `params`.
inline int32_t FakeNextToken(const std::vector<int32_t>& context, const SamplingParams& params, uint64_t draw,
                             int vocab) {
  uint64_t h = 12345;
  for (int32_t t : context) h = Mix64(h ^ static_cast<uint32_t>(t));
  if (!params.greedy()) h = Mix64(h ^ Mix64(params.seed * 1000003 + draw));
  return static_cast<int32_t>(h % static_cast<uint64_t>(vocab));
}

class FakeRunner final : public ModelRunner {
 public:
  FakeRunner(int num_blocks, int block_size, int in_flight = 1, int vocab = 97, int max_positions = 512)
      : block_size_(block_size), in_flight_(in_flight), kv_(static_cast<size_t>(num_blocks * block_size), -1) {
    config_.vocab_size = vocab;
    config_.max_positions = max_positions;
  }

  ModelConfig& mutable_config() { return config_; }
  const ModelConfig& config() const override { return config_; }
  int preferred_in_flight() const override { return in_flight_; }

  Status Submit(const StepPlan& plan) override {
    ++submits_;
    if (step_delay_ms_ > 0) std::this_thread::sleep_for(std::chrono::milliseconds(step_delay_ms_));
    if (fail_at_submit_ > 0 && submits_ >= fail_at_submit_) return Status::Internal("injected failure");
    EXPECT_TRUE(ValidateStepPlan(plan, config_).ok()) << ValidateStepPlan(plan, config_).ToString();
    EXPECT_LT(static_cast<int>(pending_.size()), in_flight_) << "more steps in flight than asked";
    max_step_tokens_ = std::max(max_step_tokens_, plan.num_tokens());
    plans_.push_back(plan);
    for (int64_t id : plan.released_seqs) samplers_.erase(id);
    StepOutput out;
    size_t offset = 0;
    for (size_t i = 0; i < plan.seqs.size(); ++i) {
      const SequenceStep& s = plan.seqs[i];
      const int first = s.context_len - s.num_new_tokens;
      for (int k = 0; k < s.num_new_tokens; ++k) Slot(s.block_table, first + k) = plan.token_ids[offset + k];
      if (s.has_sampling)
        samplers_[s.seq_id] = Entry{s.sampling, s.logprobs, static_cast<uint64_t>(s.sampler_draws_done), {}};
      auto it = samplers_.find(s.seq_id);
      EXPECT_NE(it, samplers_.end()) << "no sampler for seq " << s.seq_id;
      if (it == samplers_.end()) return Status::Internal("no sampler");
      Entry& e = it->second;
      e.history.insert(e.history.end(), plan.token_ids.begin() + static_cast<int64_t>(offset),
                       plan.token_ids.begin() + static_cast<int64_t>(offset + s.num_new_tokens));
      offset += static_cast<size_t>(s.num_new_tokens);
      std::vector<int32_t> context;
      for (int p = 0; p < s.context_len; ++p) context.push_back(Slot(s.block_table, p));
      // The sampler has seen the context's tail (all of it, unless the
      // sequence started from cached blocks, which only penalty-free
      // requests may).
      EXPECT_TRUE(
          e.history.size() <= context.size() &&
          std::equal(e.history.begin(), e.history.end(), context.end() - static_cast<int64_t>(e.history.size())))
          << "seq " << s.seq_id << ": history is not the tail of the cached context";
      if (e.params.repetition_penalty != 1.0f) {
        EXPECT_EQ(e.history, context) << "seq " << s.seq_id;
      }
      if (!s.sample) {
        out.tokens.push_back(-1);
        continue;
      }
      const int32_t token = FakeNextToken(context, e.params, e.draws, config_.vocab_size);
      if (!e.params.greedy()) ++e.draws;
      out.tokens.push_back(token);
      if (e.logprobs >= 0) {
        out.logprobs.resize(plan.seqs.size());
        out.logprobs[i].logprob = -static_cast<float>(token);
        out.logprobs[i].top = {{token, -1.0f}};
      }
    }
    pending_.push_back(std::move(out));
    return Status::Ok();
  }

  StatusOr<StepOutput> Collect() override {
    if (pending_.empty()) return Status::FailedPrecondition("Collect without a submitted step");
    StepOutput out = std::move(pending_.front());
    pending_.pop_front();
    return out;
  }

  void FailAtSubmit(int n) { fail_at_submit_ = n; }
  // Makes each step take this long (tests that act while requests run).
  void SetStepDelay(int ms) { step_delay_ms_ = ms; }
  int max_step_tokens() const { return max_step_tokens_; }
  size_t live_samplers() const { return samplers_.size(); }
  const std::vector<StepPlan>& plans() const { return plans_; }
  int in_flight() const { return static_cast<int>(pending_.size()); }

 private:
  struct Entry {
    SamplingParams params;
    int32_t logprobs;
    uint64_t draws;
    std::vector<int32_t> history;
  };
  int32_t& Slot(const BlockTable& table, int position) {
    const int32_t block = table.at(static_cast<size_t>(position / block_size_));
    return kv_.at(static_cast<size_t>(block * block_size_ + position % block_size_));
  }

  ModelConfig config_;
  int block_size_;
  int in_flight_;
  std::vector<int32_t> kv_;
  std::map<int64_t, Entry> samplers_;
  std::deque<StepOutput> pending_;
  std::vector<StepPlan> plans_;
  int submits_ = 0;
  int fail_at_submit_ = 0;
  int max_step_tokens_ = 0;
  int step_delay_ms_ = 0;
};

// What `request` alone produces on the fake model (no stop strings).
inline GenerationResult FakeReference(const GenerationRequest& request, const ModelConfig& config) {
  GenerationResult r;
  std::vector<int32_t> tokens = request.prompt_ids;
  for (int k = 0; k < request.max_new_tokens; ++k) {
    const int32_t t = FakeNextToken(tokens, request.sampling, static_cast<uint64_t>(k), config.vocab_size);
    tokens.push_back(t);
    r.output_ids.push_back(t);
    const auto& eos = config.eos_token_ids;
    if (!request.ignore_eos && std::find(eos.begin(), eos.end(), t) != eos.end()) {
      r.finish_reason = FinishReason::kEos;
      return r;
    }
  }
  r.finish_reason = FinishReason::kLength;
  return r;
}

}  // namespace baton::testing
