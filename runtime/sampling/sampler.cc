#include "runtime/sampling/sampler.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <utility>

#include "runtime/core/fast_exp.h"

namespace baton {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Top-p ranks candidates by logit, but only those near the cut need an exact
// order. Candidates are binned by distance below the max logit (bins are
// monotone in rank), per-bin mass finds the bin where the kept mass crosses
// top_p, and only that bin is ordered: by nth_element halving while it is
// large, then a sort of at most kTopPSortedTail.
constexpr size_t kTopPBinsPerLogit = 64;
constexpr size_t kTopPBins = 2048;  // 32 logits deep; the last bin takes the rest
constexpr size_t kTopPSortedTail = 256;

size_t TopPBin(float logit, float max_logit) {
  const float distance = (max_logit - logit) * static_cast<float>(kTopPBinsPerLogit);
  return distance < static_cast<float>(kTopPBins - 1) ? static_cast<size_t>(distance) : kTopPBins - 1;
}

// Lowest id among the largest values; NaN and -inf never win. 0 if nothing
// is above -inf. Eight running maxima, one per lane: a single one makes each
// comparison wait for the previous (a chain of dependent maxss, several
// times slower over a 128k row).
int32_t ArgMax(std::span<const float> values) {
  constexpr size_t kLanes = 8;
  float lane_max[kLanes];
  size_t lane_id[kLanes];
  for (size_t j = 0; j < kLanes; ++j) {
    lane_max[j] = kNegInf;
    lane_id[j] = 0;
  }
  const size_t n = values.size();
  size_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (size_t j = 0; j < kLanes; ++j) {
      if (values[i + j] > lane_max[j]) {
        lane_max[j] = values[i + j];
        lane_id[j] = i + j;
      }
    }
  }
  for (; i < n; ++i) {
    if (values[i] > lane_max[0]) {
      lane_max[0] = values[i];
      lane_id[0] = i;
    }
  }
  // Each lane kept its first maximum; across lanes, the lowest id on ties.
  size_t best = 0;
  for (size_t j = 1; j < kLanes; ++j) {
    if (lane_max[j] > lane_max[best] || (lane_max[j] == lane_max[best] && lane_id[j] < lane_id[best])) {
      best = j;
    }
  }
  return static_cast<int32_t>(lane_id[best]);
}

// HF RepetitionPenaltyLogitsProcessor on one logit.
float Penalize(float logit, float penalty) { return logit < 0.0f ? logit * penalty : logit / penalty; }

// Four independent sums: a single chain of dependent double adds would cost
// more than the vectorized exp that produced the weights.
template <typename C>
double SumWeights(const std::vector<C>& candidates) {
  double partial[4] = {0.0, 0.0, 0.0, 0.0};
  const size_t n = candidates.size();
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    for (size_t j = 0; j < 4; ++j) partial[j] += candidates[i + j].weight;
  }
  for (; i < n; ++i) partial[0] += candidates[i].weight;
  return (partial[0] + partial[1]) + (partial[2] + partial[3]);
}

// out[i] = exp(logits[i] - max_logit). Built twice, for AVX2 and for the
// baseline, and picked when the program loads: the exp has no branches, so
// eight lanes do twice the work of four. Without FMA, so that no multiply
// and add fuse and every CPU gets the same bits.
__attribute__((target_clones("avx2", "default"))) void WeighRow(const float* logits, size_t n, float max_logit,
                                                                float* out) {
  for (size_t i = 0; i < n; ++i) out[i] = ExpNonPositive(logits[i] - max_logit);
}

}  // namespace

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {}

int32_t Sampler::Sample(std::span<const float> logits, std::span<const int32_t> context) {
  last_ = LastDistribution::kNone;
  // Drawn first so that every non-greedy call costs exactly one draw, also
  // the ones that return early: draws then count calls, which is what a
  // rebuilt sampler skips.
  const double uniform = params_.greedy() ? 0.0 : UniformDouble();
  if (logits.empty()) return -1;
  CopyLogits(logits, context);

  const int32_t top = ArgMax(logits_);
  if (params_.greedy()) {
    last_ = LastDistribution::kPenalizedLogits;
    return top;
  }
  // Nothing to draw from (all -inf or NaN), or a +inf logit, which makes the
  // softmax NaN: fall back to the argmax.
  max_logit_ = logits_[top];
  if (!std::isfinite(max_logit_)) return top;

  float threshold = kNegInf;
  const size_t k = static_cast<size_t>(params_.top_k);
  if (k > 0 && k < logits_.size()) threshold = KthLargestLogit(k);
  GatherWeightedCandidates(threshold);
  if (params_.top_p < 1.0f) KeepTopP();
  if (params_.min_p > 0.0f) KeepMinP();

  last_ = LastDistribution::kCandidates;
  return Draw(uniform);
}

// Repetition penalty, then temperature, in one pass over the row: entries
// are divided by T as they are copied, then the context's entries are
// recomputed from the input as Penalize(x) / T. Recomputing from the input
// makes a repeated id harmless (HF penalizes each distinct id once) without
// a seen-set, and performs HF's float operations in HF's order.
void Sampler::CopyLogits(std::span<const float> logits, std::span<const int32_t> context) {
  const size_t vocab = logits.size();
  const float t = params_.greedy() ? 1.0f : params_.temperature;
  logits_.resize(vocab);
  if (t == 1.0f) {
    std::copy(logits.begin(), logits.end(), logits_.begin());
  } else {
    for (size_t i = 0; i < vocab; ++i) logits_[i] = logits[i] / t;
  }
  const float penalty = params_.repetition_penalty;
  if (penalty == 1.0f) return;
  for (int32_t id : context) {
    if (id < 0 || static_cast<size_t>(id) >= vocab) continue;
    logits_[id] = Penalize(logits[id], penalty) / t;
  }
}

// The k-th largest non-NaN logit, counting equal values separately (torch
// topk's values[..., -1]); -inf when fewer than k exist. One pass collects
// values above a floor into a buffer of 2k; each time it fills, nth_element
// keeps its k largest and raises the floor to the k-th. For logits in no
// particular order the floor soon rejects nearly everything, so this costs
// about one comparison per logit, with no heap's log k per insertion.
float Sampler::KthLargestLogit(size_t k) {
  auto kth = [&] { return kth_scratch_.begin() + static_cast<std::ptrdiff_t>(k - 1); };
  kth_scratch_.clear();
  float floor = kNegInf;  // no value <= floor can be above the k-th largest
  for (float v : logits_) {
    if (!(v > floor)) continue;  // NaN too
    kth_scratch_.push_back(v);
    if (kth_scratch_.size() == 2 * k) {
      std::nth_element(kth_scratch_.begin(), kth(), kth_scratch_.end(), std::greater<float>());
      floor = *kth();
      kth_scratch_.resize(k);
    }
  }
  if (kth_scratch_.size() < k) return kNegInf;
  std::nth_element(kth_scratch_.begin(), kth(), kth_scratch_.end(), std::greater<float>());
  return *kth();
}

// Keeps every logit >= threshold, so ties at the k-th value all survive (HF
// masks `logits < topk[..., -1]`). -inf and NaN are left out: they carry no
// probability. Each kept one gets its weight exp(logit - max_logit_), and
// total_weight_ their sum.
//
// The weights are first computed for the whole row, in a loop over floats
// that vectorizes; over the candidates (12-byte records) the same loop ran
// one exp at a time and was a third of sampling's cost. Then each logit is
// written at the next free place and kept by moving past it, with no branch
// and no push_back per logit. Both passes give the weights and sum that the
// record-by-record ones gave, bit for bit.
void Sampler::GatherWeightedCandidates(float threshold) {
  const size_t vocab = logits_.size();
  const float max_logit = max_logit_;
  row_weights_.resize(vocab);
  WeighRow(logits_.data(), vocab, max_logit, row_weights_.data());
  candidates_.resize(vocab);
  Candidate* out = candidates_.data();
  size_t kept = 0;
  for (size_t i = 0; i < vocab; ++i) {
    const float v = logits_[i];
    out[kept] = {static_cast<int32_t>(i), v, row_weights_[i]};
    kept += static_cast<size_t>((v >= threshold) & (v != kNegInf));
  }
  candidates_.resize(kept);
  total_weight_ = SumWeights(candidates_);
}

// HF TopPLogitsWarper removes, from the least likely up, tokens whose
// cumulative probability is <= 1 - top_p. Seen from the top: a token stays
// while the mass ranked strictly above it is < top_p, i.e. the smallest
// prefix reaching top_p is kept (always at least the top token).
void Sampler::KeepTopP() {
  // Rank: larger logit first, then lower id, so which of several equal
  // logits is cut at the boundary is well defined.
  auto rank = [](const Candidate& a, const Candidate& b) {
    return a.logit != b.logit ? a.logit > b.logit : a.id < b.id;
  };
  auto at = [this](size_t i) { return candidates_.begin() + static_cast<std::ptrdiff_t>(i); };
  const float max_logit = max_logit_;
  auto bin_of = [max_logit](const Candidate& c) { return TopPBin(c.logit, max_logit); };
  const double limit = static_cast<double>(params_.top_p) * total_weight_;

  bin_mass_.assign(kTopPBins, 0.0);
  for (const Candidate& c : candidates_) bin_mass_[bin_of(c)] += c.weight;
  size_t boundary = 0;
  double above = 0.0;
  while (boundary + 1 < kTopPBins && above + bin_mass_[boundary] < limit) {
    above += bin_mass_[boundary++];
  }
  // Bins before the boundary are kept whole; bins after it are dropped.
  auto sure_end =
      std::partition(candidates_.begin(), candidates_.end(), [&](const Candidate& c) { return bin_of(c) < boundary; });
  auto boundary_end =
      std::partition(sure_end, candidates_.end(), [&](const Candidate& c) { return bin_of(c) == boundary; });

  // Invariant: candidates_[0, lo) are the lo highest ranked and their weights
  // sum to `above` < limit; the count to keep is in (lo, hi]; [lo, hi) holds
  // the next ones in rank, unordered.
  size_t lo = static_cast<size_t>(sure_end - candidates_.begin());
  size_t hi = static_cast<size_t>(boundary_end - candidates_.begin());
  while (hi - lo > kTopPSortedTail) {
    const size_t mid = lo + (hi - lo) / 2;
    std::nth_element(at(lo), at(mid), at(hi), rank);
    double upper = 0.0;
    for (size_t i = lo; i < mid; ++i) upper += candidates_[i].weight;
    if (above + upper >= limit) {
      hi = mid;
    } else {
      above += upper;
      lo = mid;
    }
  }
  std::sort(at(lo), at(hi), rank);
  size_t keep = lo;
  // Bin sums and this walk round differently: if the walk ends the bin just
  // short of the limit, the whole bin is kept (a rounding-level difference).
  while (keep < hi && above < limit) above += candidates_[keep++].weight;
  candidates_.resize(keep);
  total_weight_ = above;
}

// HF MinPLogitsWarper: keep tokens whose probability (softmax over what
// top-k/top-p left) is >= min_p times the largest probability.
void Sampler::KeepMinP() {
  float max_weight = 0.0f;
  for (const Candidate& c : candidates_) max_weight = std::max(max_weight, c.weight);
  const double total = total_weight_;
  const double threshold = static_cast<double>(params_.min_p) * (max_weight / total);
  std::erase_if(candidates_, [&](const Candidate& c) { return c.weight / total < threshold; });
  total_weight_ = SumWeights(candidates_);
}

// Walks the CDF of the surviving candidates with one uniform draw in [0, 1).
int32_t Sampler::Draw(double uniform) {
  const double u = uniform * total_weight_;
  double cumulative = 0.0;
  int32_t last_possible = candidates_.front().id;
  for (const Candidate& c : candidates_) {
    if (c.weight <= 0.0f) continue;
    cumulative += c.weight;
    last_possible = c.id;
    if (u < cumulative) return c.id;
  }
  return last_possible;  // the walk's sum rounded below total_weight_
}

// 53 random bits scaled into [0, 1): every value equally likely, and the same
// on every platform (std::uniform_real_distribution is not specified bit-exactly).
double Sampler::UniformDouble() {
  ++draws_;
  return static_cast<double>(rng_() >> 11) * 0x1.0p-53;
}

void Sampler::SkipDraws(uint64_t n) {
  if (params_.greedy()) return;
  rng_.discard(n);  // one engine output per draw (UniformDouble)
  draws_ += n;
}

std::vector<TokenLogprob> Sampler::TopLogprobs(size_t n) const {
  std::vector<std::pair<float, int32_t>> ranked;  // (logit, id)
  double log_normalizer = 0.0;
  if (last_ == LastDistribution::kCandidates) {
    ranked.reserve(candidates_.size());
    for (const Candidate& c : candidates_) ranked.push_back({c.logit, c.id});
    log_normalizer = static_cast<double>(max_logit_) + std::log(total_weight_);
  } else if (last_ == LastDistribution::kPenalizedLogits) {
    float max_logit = kNegInf;
    for (float v : logits_) {
      if (!std::isnan(v)) max_logit = std::max(max_logit, v);
    }
    if (!std::isfinite(max_logit)) return {};
    double sum = 0.0;
    ranked.reserve(logits_.size());
    for (size_t i = 0; i < logits_.size(); ++i) {
      const float v = logits_[i];
      if (std::isnan(v) || v == kNegInf) continue;
      sum += std::exp(static_cast<double>(v) - max_logit);
      ranked.push_back({v, static_cast<int32_t>(i)});
    }
    log_normalizer = static_cast<double>(max_logit) + std::log(sum);
  }
  const size_t m = std::min(n, ranked.size());
  auto by_rank = [](const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  };
  std::partial_sort(ranked.begin(), ranked.begin() + static_cast<std::ptrdiff_t>(m), ranked.end(), by_rank);
  std::vector<TokenLogprob> top(m);
  for (size_t i = 0; i < m; ++i) {
    top[i] = {ranked[i].second, static_cast<float>(ranked[i].first - log_normalizer)};
  }
  return top;
}

}  // namespace baton
