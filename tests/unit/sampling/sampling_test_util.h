// Reference computations for the sampler tests, written independently of the
// Sampler (plain double arithmetic, full sorts), plus draw counting.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <set>
#include <span>
#include <vector>

#include "runtime/sampling/sampler.h"

namespace baton::testing {

inline std::vector<double> Softmax(std::span<const float> logits, double temperature = 1.0) {
  double max_scaled = -INFINITY;
  for (float l : logits) max_scaled = std::max(max_scaled, l / temperature);
  std::vector<double> p(logits.size());
  double sum = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    p[i] = std::exp(logits[i] / temperature - max_scaled);
    sum += p[i];
  }
  for (double& x : p) x /= sum;
  return p;
}

// Ids by decreasing probability (lower id first on ties).
inline std::vector<int32_t> RankByProbability(const std::vector<double>& p) {
  std::vector<int32_t> ids(p.size());
  std::iota(ids.begin(), ids.end(), 0);
  std::stable_sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) { return p[a] > p[b]; });
  return ids;
}

// Smallest set of most likely ids whose probability sum reaches top_p.
inline std::set<int32_t> TopPSet(const std::vector<double>& p, double top_p) {
  std::set<int32_t> kept;
  double sum = 0;
  for (int32_t id : RankByProbability(p)) {
    if (sum >= top_p) break;
    kept.insert(id);
    sum += p[id];
  }
  return kept;
}

inline std::set<int32_t> MinPSet(const std::vector<double>& p, double min_p) {
  const double max_p = *std::max_element(p.begin(), p.end());
  std::set<int32_t> kept;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] >= min_p * max_p) kept.insert(static_cast<int32_t>(i));
  }
  return kept;
}

// Deterministic pseudo-random logits, uniform in [lo, hi).
inline std::vector<float> RandomLogits(size_t n, uint64_t seed, float lo = -4.0f, float hi = 4.0f) {
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> logits(n);
  for (float& l : logits) l = dist(gen);
  return logits;
}

// How often each id was drawn in `draws` calls of one Sampler.
inline std::vector<int64_t> CountDraws(const SamplingParams& params, std::span<const float> logits, int draws,
                                       std::span<const int32_t> context = {}) {
  Sampler sampler(params);
  std::vector<int64_t> counts(logits.size(), 0);
  for (int i = 0; i < draws; ++i) {
    int32_t id = sampler.Sample(logits, context);
    if (id < 0 || static_cast<size_t>(id) >= logits.size()) {
      ADD_FAILURE() << "id out of range: " << id;
      continue;
    }
    ++counts[id];
  }
  return counts;
}

inline std::set<int32_t> DrawnIds(const std::vector<int64_t>& counts) {
  std::set<int32_t> ids;
  for (size_t i = 0; i < counts.size(); ++i) {
    if (counts[i] > 0) ids.insert(static_cast<int32_t>(i));
  }
  return ids;
}

}  // namespace baton::testing
