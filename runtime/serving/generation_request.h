// What a caller asks of text generation, and what it gets back.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/sampling/sampling_params.h"

namespace baton {

struct GenerationRequest {
  std::vector<int32_t> prompt_ids;
  int max_new_tokens = 32;
  SamplingParams sampling;
  std::vector<std::string> stop;  // stop strings: generation ends before the first one
  bool ignore_eos = false;
  // 0: no log-probabilities. n > 0: each generated token's logprob and the
  // top-n alternatives, from the model's raw distribution (log-softmax of
  // the logits before temperature, penalties and truncation), as vLLM does.
  int logprobs = 0;
};

enum class FinishReason { kLength, kStop, kEos, kCancelled, kError };
// "length", "stop", "eos", "cancelled", "error"
const char* FinishReasonName(FinishReason reason);

struct GenerationResult {
  std::vector<int32_t> output_ids;  // includes the EOS token when it ended generation
  std::string text;                 // decoded output, cut before a stop string
  FinishReason finish_reason = FinishReason::kLength;
  int cached_prompt_tokens = 0;  // prompt tokens whose K/V came from the prefix cache
};

}  // namespace baton
