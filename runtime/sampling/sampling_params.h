// SamplingParams: how one sequence picks its next token from the logits.
//
// Field meanings and defaults follow Hugging Face generate(), so a request
// that works there means the same thing here. Come from user input (CLI
// flags, request fields): call Validate() before building a Sampler.
// A plain value type.
#pragma once

#include <cstdint>

#include "runtime/core/status.h"

namespace baton {

struct SamplingParams {
  float temperature = 1.0f;         // 0 = greedy (argmax)
  int top_k = 0;                    // 0 = off
  float top_p = 1.0f;               // (0, 1]; 1 = off
  float min_p = 0.0f;               // [0, 1]; 0 = off
  float repetition_penalty = 1.0f;  // > 0; 1 = off
  uint64_t seed = 0;

  // InvalidArgument naming the first bad field and its value, e.g.
  // "temperature must be >= 0 (got -1)". NaN and infinities are rejected.
  Status Validate() const;

  bool greedy() const { return temperature == 0.0f; }
};

}  // namespace baton
