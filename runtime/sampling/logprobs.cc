#include "runtime/sampling/logprobs.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "runtime/core/fast_exp.h"

namespace baton {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr float kPosInf = std::numeric_limits<float>::infinity();

// Largest non-NaN value; eight running maxima so the comparisons do not
// form one dependent chain over a 128k row.
float MaxValue(std::span<const float> values) {
  constexpr size_t kLanes = 8;
  float lane[kLanes];
  std::fill(lane, lane + kLanes, kNegInf);
  size_t i = 0;
  for (; i + kLanes <= values.size(); i += kLanes) {
    for (size_t j = 0; j < kLanes; ++j) lane[j] = values[i + j] > lane[j] ? values[i + j] : lane[j];
  }
  for (; i < values.size(); ++i) lane[0] = values[i] > lane[0] ? values[i] : lane[0];
  return *std::max_element(lane, lane + kLanes);
}

// The n largest finite-or-+inf entries, ranked; one pass that only touches
// the kept list when a value beats its last entry (rare on real logits).
// Ids arrive in increasing order, so a newcomer equal to a kept value ranks
// after it: upper_bound places it there and ties go to the lower id.
std::vector<TokenLogprob> TopEntries(std::span<const float> logits, size_t n) {
  std::vector<TokenLogprob> kept;  // logprob holds the raw logit until the end
  if (n == 0) return kept;
  kept.reserve(n + 1);
  float floor = kNegInf;  // a value must exceed this to enter
  for (size_t i = 0; i < logits.size(); ++i) {
    const float v = logits[i];
    if (!(v > floor)) continue;  // NaN, -inf, or not good enough
    auto at = std::upper_bound(kept.begin(), kept.end(), v,
                               [](float value, const TokenLogprob& e) { return value > e.logprob; });
    kept.insert(at, TokenLogprob{static_cast<int32_t>(i), v});
    if (kept.size() > n) kept.pop_back();
    if (kept.size() == n) floor = kept.back().logprob;
  }
  return kept;
}

}  // namespace

RowLogprobs ComputeLogprobs(std::span<const float> logits, int32_t token, size_t top_n) {
  RowLogprobs out;
  out.top = TopEntries(logits, top_n);
  const float max_logit = MaxValue(logits);
  // logprob of a raw logit v, given the log normalizer.
  auto logprob_of = [](float v, double log_normalizer) {
    return static_cast<float>(static_cast<double>(v) - log_normalizer);
  };
  if (max_logit == kPosInf) {
    // The softmax's limit: the +inf entries split the mass evenly.
    const auto count = std::count(logits.begin(), logits.end(), kPosInf);
    const float share = static_cast<float>(-std::log(static_cast<double>(count)));
    auto limit = [share](float v) { return v == kPosInf ? share : kNegInf; };
    out.token_logprob = limit(logits[static_cast<size_t>(token)]);
    for (TokenLogprob& t : out.top) t.logprob = limit(t.logprob);
    return out;
  }
  if (max_logit == kNegInf) {  // nothing has any probability
    out.token_logprob = kNegInf;
    return out;  // top is empty: no entry beat -inf
  }
  // Exponentials of v - max <= 0 (NaN and -inf give 0); four partial double
  // sums keep the adds independent.
  double partial[4] = {0.0, 0.0, 0.0, 0.0};
  size_t i = 0;
  for (; i + 4 <= logits.size(); i += 4) {
    for (size_t j = 0; j < 4; ++j) partial[j] += ExpNonPositive(logits[i + j] - max_logit);
  }
  for (; i < logits.size(); ++i) partial[0] += ExpNonPositive(logits[i] - max_logit);
  const double sum = (partial[0] + partial[1]) + (partial[2] + partial[3]);
  const double log_normalizer = static_cast<double>(max_logit) + std::log(sum);
  const float v = logits[static_cast<size_t>(token)];
  out.token_logprob = std::isnan(v) ? kNegInf : logprob_of(v, log_normalizer);
  for (TokenLogprob& t : out.top) t.logprob = logprob_of(t.logprob, log_normalizer);
  return out;
}

}  // namespace baton
