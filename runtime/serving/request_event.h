// What a request's stream carries: token events as tokens are accepted,
// then one final event with the result, usage and timings. Produced by the
// Scheduler on the thread that drives it; sinks must not block (queue and
// return).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "runtime/core/status.h"
#include "runtime/serving/generation_request.h"
#include "runtime/serving/model_runner.h"

namespace baton {

struct RequestTimings {
  double queue_seconds = 0;        // accepted -> first scheduled
  double first_token_seconds = 0;  // accepted -> first token (0 when none came)
  double total_seconds = 0;        // accepted -> final event
};

// One event of a request's stream: some accepted tokens, or the end.
struct RequestEvent {
  bool final = false;
  // Token event: the tokens accepted (usually one), the new text (complete
  // UTF-8, empty while a character is pending), their logprobs when asked.
  std::vector<int32_t> token_ids;
  std::string text_delta;
  std::vector<TokenLogprobs> logprobs;
  // Final event: result.finish_reason says why (kError: `error` says what).
  GenerationResult result;
  int prompt_tokens = 0;
  Status error;
  RequestTimings timings;
};
using RequestSink = std::function<void(const RequestEvent&)>;

}  // namespace baton
