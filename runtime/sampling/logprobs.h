// Log-probabilities of one logits row under the model's raw distribution:
// log_softmax of the row as the model produced it, before any repetition
// penalty, temperature or truncation (what vLLM returns by default), so a
// token's logprob does not depend on how it was sampled.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace baton {

struct TokenLogprob {
  int32_t id;
  float logprob;
};

struct RowLogprobs {
  float token_logprob = 0.0f;     // of the token asked about
  std::vector<TokenLogprob> top;  // most likely first, lower id first on ties
};

// `token` must be inside the row. The log-sum-exp is taken around the row's
// largest value, with float exponentials (within 2 ulp) summed in double, so
// every logprob is within about 1e-6 of exact. NaN entries count as
// probability 0 and, like -inf entries, never appear in `top` (which is then
// shorter than n). If the row has no finite maximum: +inf entries share all
// the probability (log(1/count)); a row of -inf/NaN gives -inf everywhere.
RowLogprobs ComputeLogprobs(std::span<const float> logits, int32_t token, size_t top_n);

}  // namespace baton
