#include "runtime/sampling/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <vector>

#include "tests/unit/sampling/sampling_test_util.h"

namespace baton {
namespace {

using testing::CountDraws;
using testing::DrawnIds;
using testing::MinPSet;
using testing::RandomLogits;
using testing::Softmax;
using testing::TopPSet;

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

SamplingParams Greedy() {
  SamplingParams p;
  p.temperature = 0.0f;
  return p;
}

std::map<int32_t, float> LogprobsById(const Sampler& s, size_t n) {
  std::map<int32_t, float> m;
  for (const TokenLogprob& t : s.TopLogprobs(n)) m[t.id] = t.logprob;
  return m;
}

TEST(Sampler, GreedyIsArgmaxWithLowestIdOnTies) {
  Sampler s(Greedy());
  std::vector<float> logits = {0.1f, 2.0f, -3.0f, 1.9f};
  EXPECT_EQ(s.Sample(logits, {}), 1);
  logits = {0.5f, 3.0f, 1.0f, 3.0f};
  EXPECT_EQ(s.Sample(logits, {}), 1);
  logits = {kNegInf, std::nanf(""), -7.0f};
  EXPECT_EQ(s.Sample(logits, {}), 2) << "NaN is never the argmax";
  std::vector<float> big = RandomLogits(128000, 5);
  size_t expected = 0;
  for (size_t i = 1; i < big.size(); ++i) {
    if (big[i] > big[expected]) expected = i;
  }
  EXPECT_EQ(s.Sample(big, {}), static_cast<int32_t>(expected));
  for (int32_t id : {99999, 1001, 37, 64}) big[id] = 100.0f;
  EXPECT_EQ(s.Sample(big, {}), 37);
}

TEST(Sampler, RepetitionPenaltyMatchesTheFormula) {
  // Hand computed with penalty 2: positive logits halve, negative double,
  // each distinct id once however often it occurs; ids 99 and -5 are out of
  // the vocab and ignored.
  const std::vector<float> logits = {2.0f, -1.0f, 0.5f, 1.8f, -0.3f};
  const std::vector<float> original = logits;
  const std::vector<int32_t> context = {0, 1, 1, 4, 99, -5, 1};
  const std::vector<double> expected = {1.0, -2.0, 0.5, 1.8, -0.6};

  SamplingParams p = Greedy();
  p.repetition_penalty = 2.0f;
  Sampler s(p);
  EXPECT_EQ(s.Sample(logits, context), 3) << "penalty moves the argmax from 0 to 3";
  EXPECT_EQ(logits, original) << "input row must not be modified";

  // Greedy logprobs are the log-softmax of the penalized logits: their
  // differences are the penalized logits' differences.
  std::map<int32_t, float> lp = LogprobsById(s, 5);
  ASSERT_EQ(lp.size(), 5u);
  for (int32_t id = 0; id < 5; ++id) {
    EXPECT_NEAR(lp[id] - lp[3], expected[id] - expected[3], 1e-5) << "id " << id;
  }
  double total = 0;
  for (auto& [id, l] : lp) total += std::exp(l);
  EXPECT_NEAR(total, 1.0, 1e-6);

  // Without the context the argmax stays at 0; penalty 1 is a no-op.
  EXPECT_EQ(s.Sample(logits, {}), 0);
  Sampler off(Greedy());
  EXPECT_EQ(off.Sample(logits, context), 0);

  // A penalty < 1 rewards repeats: 1.8 / 0.5 = 3.6 beats 2.0.
  p.repetition_penalty = 0.5f;
  Sampler reward(p);
  EXPECT_EQ(reward.Sample(logits, std::vector<int32_t>{3}), 3);
}

TEST(Sampler, SameSeedSameDrawsDifferentSeedDifferentDraws) {
  const std::vector<float> logits = RandomLogits(50, 1, -1.0f, 1.0f);
  SamplingParams p;
  p.seed = 42;
  Sampler a(p), b(p), other_in_batch(p);
  p.seed = 43;
  Sampler c(p);
  int differing = 0;
  for (int i = 0; i < 1000; ++i) {
    int32_t x = a.Sample(logits, {});
    other_in_batch.Sample(logits, {});  // interleaved: must not disturb b
    other_in_batch.Sample(logits, {});
    int32_t y = b.Sample(logits, {});
    ASSERT_EQ(x, y) << "draw " << i;
    if (c.Sample(logits, {}) != x) ++differing;
  }
  EXPECT_GT(differing, 900) << "50 near-uniform choices: another seed should rarely agree";
}

TEST(Sampler, TopK1IsGreedy) {
  SamplingParams p;
  p.top_k = 1;
  p.temperature = 1.7f;
  Sampler topk1(p);
  Sampler greedy(Greedy());
  for (uint64_t row = 0; row < 50; ++row) {
    std::vector<float> logits = RandomLogits(1000, 100 + row);
    EXPECT_EQ(topk1.Sample(logits, {}), greedy.Sample(logits, {})) << "row " << row;
  }
}

// Only the k largest are ever drawn. The logits are nearly flat, so drawing
// outside the top k would be frequent, and all (or, for large k, most) of the
// allowed ids show up.
void ExpectOnlyTopKDrawn(size_t vocab, int k, int draws, double min_coverage) {
  std::vector<float> logits = RandomLogits(vocab, vocab + k, 0.0f, 0.5f);
  std::vector<float> sorted = logits;
  std::sort(sorted.begin(), sorted.end(), std::greater<float>());
  std::set<int32_t> allowed;
  for (size_t i = 0; i < vocab; ++i) {
    if (logits[i] >= sorted[k - 1]) allowed.insert(static_cast<int32_t>(i));
  }
  ASSERT_EQ(allowed.size(), static_cast<size_t>(k));
  SamplingParams p;
  p.top_k = k;
  p.seed = 3;
  std::set<int32_t> drawn = DrawnIds(CountDraws(p, logits, draws));
  EXPECT_TRUE(std::includes(allowed.begin(), allowed.end(), drawn.begin(), drawn.end()))
      << "vocab " << vocab << " k " << k;
  EXPECT_GE(drawn.size(), min_coverage * k) << "vocab " << vocab << " k " << k;
}

TEST(Sampler, TopKDrawsOnlyTheKLargest) {
  ExpectOnlyTopKDrawn(1000, 5, 1000, 1.0);
  ExpectOnlyTopKDrawn(1000, 40, 2000, 1.0);
  ExpectOnlyTopKDrawn(2000, 1500, 3000, 0.7);
}

TEST(Sampler, TopKKeepsAllTiesAtTheKthValue) {
  const std::vector<float> logits = {3.0f, 2.0f, 2.0f, 1.0f, 0.0f};
  SamplingParams p;
  p.top_k = 2;
  EXPECT_EQ(DrawnIds(CountDraws(p, logits, 5000)), (std::set<int32_t>{0, 1, 2}));

  // Many ties, more than the selection buffer holds: all of them stay.
  std::vector<float> many(1000, 0.0f);
  std::set<int32_t> tied;
  for (int32_t id = 7; id < 1000; id += 50) {
    many[id] = 1.0f;
    tied.insert(id);
  }
  p.top_k = 3;
  EXPECT_EQ(DrawnIds(CountDraws(p, many, 4000)), tied);
}

TEST(Sampler, TopPDrawsOnlyTheSmallestPrefixReachingTopP) {
  struct Case {
    size_t vocab;
    float lo, hi;  // logit range
    float temperature;
    float top_p;
    int draws;
    double min_coverage;  // of the allowed set by the draws
  };
  const Case cases[] = {
      {8, -3.0f, 3.0f, 0.8f, 0.7f, 20000, 1.0},
      {64, -3.0f, 3.0f, 1.0f, 0.3f, 20000, 1.0},
      {1000, 0.0f, 3.0f, 1.0f, 0.5f, 12000, 1.0},
      // Nearly flat: the cut falls among ~750 near-equal logits, which are
      // ordered by halving selection rather than one sort.
      {1500, 0.0f, 0.01f, 1.0f, 0.5f, 2000, 0.7},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.vocab);
    std::vector<float> logits = RandomLogits(c.vocab, c.vocab, c.lo, c.hi);
    std::vector<double> probs = Softmax(logits, c.temperature);
    std::set<int32_t> allowed = TopPSet(probs, c.top_p);
    // The boundary must not be a rounding question.
    double kept_mass = 0, smallest = 1;
    for (int32_t id : allowed) {
      kept_mass += probs[id];
      smallest = std::min(smallest, probs[id]);
    }
    ASSERT_LT(kept_mass - smallest, c.top_p - 1e-6);
    ASSERT_GE(kept_mass, c.top_p + 1e-6);
    ASSERT_LT(allowed.size(), c.vocab);

    SamplingParams p;
    p.temperature = c.temperature;
    p.top_p = c.top_p;
    std::set<int32_t> drawn = DrawnIds(CountDraws(p, logits, c.draws));
    EXPECT_TRUE(std::includes(allowed.begin(), allowed.end(), drawn.begin(), drawn.end()));
    EXPECT_GE(drawn.size(), c.min_coverage * allowed.size());
  }
}

TEST(Sampler, TopPAlwaysKeepsTheMostLikelyToken) {
  SamplingParams p;
  p.top_p = 1e-6f;
  std::vector<float> logits = {0.0f, 0.1f, 0.05f};
  EXPECT_EQ(DrawnIds(CountDraws(p, logits, 1000)), (std::set<int32_t>{1}));
}

TEST(Sampler, MinPDrawsOnlyTokensWithinMinPOfTheMax) {
  std::vector<float> logits = RandomLogits(30, 11, -3.0f, 3.0f);
  for (float min_p : {0.05f, 0.3f}) {
    SamplingParams p;
    p.temperature = 1.5f;
    p.min_p = min_p;
    std::set<int32_t> allowed = MinPSet(Softmax(logits, 1.5), min_p);
    ASSERT_GT(allowed.size(), 1u);
    ASSERT_LT(allowed.size(), logits.size());
    EXPECT_EQ(DrawnIds(CountDraws(p, logits, 30000)), allowed) << "min_p " << min_p;
  }
}

TEST(Sampler, TopPSeesTheDistributionRenormalizedAfterTopK) {
  // After top-k=2 the probabilities are 4/7 and 3/7: the first alone reaches
  // 0.5. (Applied to the original 0.4/0.3, top-p would keep both.)
  const std::vector<float> logits = {std::log(0.4f), std::log(0.3f), std::log(0.2f), std::log(0.1f)};
  SamplingParams p;
  p.top_k = 2;
  p.top_p = 0.5f;
  EXPECT_EQ(DrawnIds(CountDraws(p, logits, 2000)), (std::set<int32_t>{0}));
}

TEST(Sampler, MinPComesAfterTopP) {
  // top-p 0.6 on 0.5/0.3/0.2 keeps {0, 1}; min-p 0.5 then keeps both
  // (0.3 >= 0.25). Min-p first would leave 0.625/0.375, and top-p then only {0}.
  const std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
  SamplingParams p;
  p.top_p = 0.6f;
  p.min_p = 0.5f;
  EXPECT_EQ(DrawnIds(CountDraws(p, logits, 2000)), (std::set<int32_t>{0, 1}));
}

TEST(Sampler, MaskedAndDegenerateRows) {
  SamplingParams p;
  const std::vector<float> masked = {kNegInf, 0.0f, kNegInf, std::nanf(""), 0.0f};
  EXPECT_EQ(DrawnIds(CountDraws(p, masked, 2000)), (std::set<int32_t>{1, 4}));

  Sampler s(p);
  EXPECT_EQ(s.Sample(std::vector<float>{}, {}), -1);
  EXPECT_TRUE(s.TopLogprobs(3).empty());
  const std::vector<float> all_masked = {kNegInf, kNegInf};
  EXPECT_EQ(s.Sample(all_masked, {}), 0);
  const std::vector<float> with_inf = {0.0f, INFINITY, 1.0f};
  EXPECT_EQ(s.Sample(with_inf, {}), 1);
}

TEST(Sampler, TopLogprobsDescribeTheDistributionDrawnFrom) {
  const std::vector<float> logits = {std::log(0.1f), std::log(0.4f), std::log(0.2f), std::log(0.3f)};
  SamplingParams p;
  p.top_k = 2;
  Sampler s(p);
  int32_t id = s.Sample(logits, {});
  EXPECT_TRUE(id == 1 || id == 3);
  std::vector<TokenLogprob> top = s.TopLogprobs(5);
  ASSERT_EQ(top.size(), 2u) << "only the candidates that survived top-k";
  EXPECT_EQ(top[0].id, 1);
  EXPECT_NEAR(top[0].logprob, std::log(0.4 / 0.7), 1e-6);
  EXPECT_EQ(top[1].id, 3);
  EXPECT_NEAR(top[1].logprob, std::log(0.3 / 0.7), 1e-6);
  EXPECT_EQ(s.TopLogprobs(1).size(), 1u);
}

}  // namespace
}  // namespace baton
