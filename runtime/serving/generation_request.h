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
};

enum class FinishReason { kLength, kStop, kEos };
const char* FinishReasonName(FinishReason reason);  // "length", "stop", "eos"

struct GenerationResult {
  std::vector<int32_t> output_ids;  // includes the EOS token when it ended generation
  std::string text;                 // decoded output, cut before a stop string
  FinishReason finish_reason = FinishReason::kLength;
};

}  // namespace baton
