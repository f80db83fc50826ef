// Statistical checks: empirical frequencies of many draws against the
// distribution computed independently in double precision. Seeds are fixed,
// so the tests are deterministic; the bounds (5 standard errors per bucket)
// are what a correct sampler passes for all but ~1e-6 of seeds.
#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <vector>

#include "runtime/sampling/sampler.h"
#include "tests/unit/sampling/sampling_test_util.h"

namespace baton {
namespace {

using testing::CountDraws;
using testing::Softmax;

constexpr int kDraws = 200000;

void ExpectFrequenciesMatch(const std::vector<int64_t>& counts, const std::vector<double>& expected) {
  ASSERT_EQ(counts.size(), expected.size());
  double chi_square = 0;
  int buckets = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    const double mean = kDraws * expected[i];
    if (expected[i] == 0) {
      EXPECT_EQ(counts[i], 0) << "id " << i << " has probability 0";
      continue;
    }
    const double sigma = std::sqrt(kDraws * expected[i] * (1 - expected[i]));
    EXPECT_NEAR(static_cast<double>(counts[i]), mean, 5 * sigma) << "id " << i;
    chi_square += (counts[i] - mean) * (counts[i] - mean) / mean;
    ++buckets;
  }
  // 99.9999th percentile of chi-square with <= 5 degrees of freedom is < 36.
  EXPECT_LT(chi_square, 36.0) << "over " << buckets << " buckets";
}

TEST(SamplerDistribution, TemperatureScalesTheSoftmax) {
  const std::vector<float> logits = {1.0f, 0.5f, -0.3f, 2.0f, 0.0f};
  for (float t : {1.0f, 0.6f, 2.5f}) {
    SCOPED_TRACE(t);
    SamplingParams p;
    p.temperature = t;
    p.seed = 1234;
    ExpectFrequenciesMatch(CountDraws(p, logits, kDraws), Softmax(logits, t));
  }
}

TEST(SamplerDistribution, FiltersRenormalizeWhatSurvives) {
  // Every stage at once, on a 6-token vocab, computed by hand in the order
  // HF applies them.
  const std::vector<float> logits = {2.0f, 1.4f, 0.3f, 1.0f, -0.5f, 0.8f};
  const std::vector<int32_t> context = {0, 4};
  SamplingParams p;
  p.repetition_penalty = 1.3f;
  p.temperature = 0.9f;
  p.top_k = 5;
  p.top_p = 0.9f;
  p.min_p = 0.5f;
  p.seed = 99;

  // Penalty: 2.0 -> 2.0/1.3 = 1.538, -0.5 -> -0.65.
  std::vector<float> penalized = logits;
  penalized[0] = 2.0f / 1.3f;
  penalized[4] = -0.5f * 1.3f;
  std::vector<double> probs = Softmax(penalized, 0.9);
  // Top-k 5 drops the smallest (id 4), then renormalize.
  probs[4] = 0;
  auto renormalize = [](std::vector<double>& q) {
    double sum = 0;
    for (double x : q) sum += x;
    for (double& x : q) x /= sum;
  };
  renormalize(probs);
  // Top-p 0.9: by rank 0 (1.538), 1 (1.4), 3 (1.0), 5 (0.8), 2 (0.3).
  std::set<int32_t> kept_p = testing::TopPSet(probs, 0.9);
  for (size_t i = 0; i < probs.size(); ++i) {
    if (!kept_p.count(static_cast<int32_t>(i))) probs[i] = 0;
  }
  renormalize(probs);
  std::set<int32_t> kept_min = testing::MinPSet(probs, 0.5);
  for (size_t i = 0; i < probs.size(); ++i) {
    if (!kept_min.count(static_cast<int32_t>(i))) probs[i] = 0;
  }
  renormalize(probs);
  // The case is only interesting if each filter removed something.
  ASSERT_EQ(kept_p.size(), 4u);
  ASSERT_EQ(kept_min.size(), 3u);

  ExpectFrequenciesMatch(CountDraws(p, logits, kDraws, context), probs);
}

}  // namespace
}  // namespace baton
