// Draw counting and skipping: a sampler rebuilt after preemption that skips
// the draws of the old one continues its stream token for token.
#include <gtest/gtest.h>

#include <vector>

#include "runtime/sampling/sampler.h"
#include "tests/unit/sampling/sampling_test_util.h"

namespace baton {
namespace {

using testing::RandomLogits;

SamplingParams Seeded(uint64_t seed) {
  SamplingParams p;
  p.temperature = 0.8f;
  p.top_k = 20;
  p.top_p = 0.95f;
  p.repetition_penalty = 1.2f;
  p.seed = seed;
  return p;
}

// Rows that change from step to step, as a decode's do.
std::vector<std::vector<float>> Rows(int n) {
  std::vector<std::vector<float>> rows;
  for (int i = 0; i < n; ++i) rows.push_back(RandomLogits(300, 100 + i, -2.0f, 2.0f));
  return rows;
}

TEST(SamplerDraws, OneDrawPerNonGreedyCallWhateverTheRow) {
  Sampler s(Seeded(5));
  const std::vector<int32_t> context = {1, 2};
  s.Sample(RandomLogits(40, 1), context);
  EXPECT_EQ(s.draws(), 1u);
  s.Sample(std::vector<float>{}, context);                      // empty row
  s.Sample(std::vector<float>{-INFINITY, -INFINITY}, context);  // nothing to draw from
  s.Sample(std::vector<float>{0.0f, INFINITY}, context);        // argmax fallback
  EXPECT_EQ(s.draws(), 4u);

  SamplingParams greedy;
  greedy.temperature = 0.0f;
  Sampler g(greedy);
  g.Sample(RandomLogits(40, 1), context);
  g.SkipDraws(7);
  EXPECT_EQ(g.draws(), 0u);
}

TEST(SamplerDraws, SkippingKDrawsContinuesTheStreamExactly) {
  const auto rows = Rows(40);
  for (uint64_t k : {0u, 1u, 5u, 17u}) {
    Sampler original(Seeded(77));
    std::vector<int32_t> history = {3, 9, 27};
    for (uint64_t i = 0; i < k; ++i) history.push_back(original.Sample(rows[i], history));
    // The rebuilt sampler sees the same history (the recomputed prefill).
    Sampler rebuilt(Seeded(77));
    rebuilt.SkipDraws(k);
    EXPECT_EQ(rebuilt.draws(), k);
    std::vector<int32_t> rebuilt_history = history;
    int differing_from_unskipped = 0;
    Sampler unskipped(Seeded(77));
    for (size_t i = k; i < rows.size(); ++i) {
      const int32_t a = original.Sample(rows[i], history);
      const int32_t b = rebuilt.Sample(rows[i], rebuilt_history);
      ASSERT_EQ(a, b) << "k=" << k << " step " << i;
      if (unskipped.Sample(rows[i], history) != a) ++differing_from_unskipped;
      history.push_back(a);
      rebuilt_history.push_back(b);
    }
    if (k > 0) {
      EXPECT_GT(differing_from_unskipped, 0) << "without the skip the stream would differ (k=" << k << ")";
    }
  }
}

TEST(SamplerDraws, SkipCountsEarlyReturnsToo) {
  // Calls that return before drawing from candidates still advance the
  // stream, so draws == Sample() calls holds for any rows.
  const auto rows = Rows(10);
  Sampler original(Seeded(3));
  original.Sample(std::vector<float>{-INFINITY, -INFINITY}, {});
  original.Sample(rows[0], {});
  Sampler rebuilt(Seeded(3));
  rebuilt.SkipDraws(original.draws());
  for (int i = 1; i < 10; ++i) ASSERT_EQ(original.Sample(rows[i], {}), rebuilt.Sample(rows[i], {})) << i;
}

}  // namespace
}  // namespace baton
