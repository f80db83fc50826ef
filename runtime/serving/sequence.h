// Sequence: one request as the Scheduler keeps it: its tokens, how far its
// K/V are computed, its KV blocks, and the text/stop/EOS state that decides
// when it ends. Accepting a token and ending send the request's events.
// Owned and driven by one Scheduler (one thread).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <vector>

#include "runtime/kv/kv_block_manager.h"
#include "runtime/sampling/stop_matcher.h"
#include "runtime/serving/request_event.h"
#include "runtime/tokenizer/stream_decoder.h"
#include "runtime/tokenizer/tokenizer.h"

namespace baton {

struct Sequence {
  using Clock = std::chrono::steady_clock;

  Sequence(uint64_t id, GenerationRequest request, RequestSink sink, const Tokenizer* tokenizer,
           Clock::time_point accepted);

  int num_generated() const { return static_cast<int>(result.output_ids.size()); }
  // Tokens whose K/V no submitted step computes yet.
  int pending() const { return static_cast<int>(tokens.size()) - computed; }

  // Appends a sampled token, sends its event and says whether the request
  // is now finished (stop string, EOS, max_new_tokens); then result's
  // finish_reason is set.
  bool Accept(int32_t token, const TokenLogprobs* logprobs, const std::vector<int32_t>& eos_ids);
  // Sends the final event.
  void End(FinishReason reason, const Status& error = Status::Ok());
  // The first time the sequence goes into a step.
  void MarkScheduled();

  const uint64_t id;  // the request id
  const GenerationRequest request;
  const Clock::time_point accepted;
  std::vector<int32_t> tokens;  // prompt, then generated
  int computed = 0;             // leading tokens whose K/V are written or in a submitted step
  BlockTable blocks;

  // Where it runs: a micro-batch slot, or -1 while waiting.
  int slot = -1;
  // The sequence's id in step plans (the last stage keys its sampler by it).
  // A preempted sequence gets a fresh one, and `life` changes so results of
  // its steps still in flight are ignored.
  int64_t seq_id = 0;
  int life = 0;
  bool registered = false;  // a submitted step carried its sampler (has_sampling)
  bool admitted_once = false;

  GenerationResult result;

 private:
  void Send(RequestEvent& event);

  RequestSink sink_;
  std::optional<StreamDecoder> decoder_;
  std::optional<StopMatcher> stop_;
  bool scheduled_ = false;
  Clock::time_point first_scheduled_;
  Clock::time_point first_token_;
};

}  // namespace baton
