// Raw-distribution logprobs against a plain double-precision log_softmax
// and a full sort, on rows of every size the vocabularies have.
#include "runtime/sampling/logprobs.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "tests/unit/sampling/sampling_test_util.h"

namespace baton {
namespace {

using testing::RandomLogits;

constexpr float kInf = std::numeric_limits<float>::infinity();

// log_softmax in double with std::exp, summed in long double: independent of
// the fast exponential and the max-shift ComputeLogprobs uses.
std::vector<double> ReferenceLogSoftmax(const std::vector<float>& row) {
  long double sum = 0;
  for (float v : row) sum += std::exp(static_cast<long double>(v));
  const double log_sum = static_cast<double>(std::log(sum));
  std::vector<double> out(row.size());
  for (size_t i = 0; i < row.size(); ++i) out[i] = static_cast<double>(row[i]) - log_sum;
  return out;
}

// Ids ordered by logit, larger first, lower id first on ties: a full sort.
std::vector<int32_t> ReferenceRanking(const std::vector<float>& row) {
  std::vector<int32_t> ids(row.size());
  std::iota(ids.begin(), ids.end(), 0);
  std::sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) { return row[a] != row[b] ? row[a] > row[b] : a < b; });
  return ids;
}

TEST(Logprobs, MatchDoublePrecisionLogSoftmaxAndFullSort) {
  // Sizes around the lane widths, and a 128k vocabulary with a wide range.
  for (size_t vocab : {1u, 3u, 8u, 13u, 1000u, 131072u}) {
    const std::vector<float> row = RandomLogits(vocab, vocab, -30.0f, 25.0f);
    const std::vector<double> ref = ReferenceLogSoftmax(row);
    const std::vector<int32_t> ranking = ReferenceRanking(row);
    for (size_t n : {0u, 1u, 5u, 20u}) {
      const int32_t token = static_cast<int32_t>((vocab * 7) / 11);
      RowLogprobs lp = ComputeLogprobs(row, token, n);
      EXPECT_NEAR(lp.token_logprob, ref[token], 2e-6 * std::max(1.0, std::fabs(ref[token]))) << vocab;
      ASSERT_EQ(lp.top.size(), std::min(n, vocab)) << vocab;
      for (size_t i = 0; i < lp.top.size(); ++i) {
        EXPECT_EQ(lp.top[i].id, ranking[i]) << vocab << " rank " << i;
        EXPECT_NEAR(lp.top[i].logprob, ref[ranking[i]], 2e-6 * std::max(1.0, std::fabs(ref[ranking[i]])));
      }
    }
  }
}

TEST(Logprobs, ProbabilitiesOfAWholeRowSumToOne) {
  const std::vector<float> row = RandomLogits(50, 9, -3.0f, 3.0f);
  const RowLogprobs lp = ComputeLogprobs(row, 0, row.size());
  double total = 0;
  for (const TokenLogprob& t : lp.top) total += std::exp(static_cast<double>(t.logprob));
  EXPECT_NEAR(total, 1.0, 1e-6);
}

TEST(Logprobs, LargeLogitsDoNotOverflow) {
  // exp(1000) overflows even in double: only a max-shifted sum survives.
  const std::vector<float> row = {1000.0f, 999.0f, 998.0f, -1000.0f};
  const RowLogprobs lp = ComputeLogprobs(row, 1, 2);
  const double lse = 1000.0 + std::log(1.0 + std::exp(-1.0) + std::exp(-2.0));
  EXPECT_NEAR(lp.token_logprob, 999.0 - lse, 1e-5);
  ASSERT_EQ(lp.top.size(), 2u);
  EXPECT_EQ(lp.top[0].id, 0);
  EXPECT_NEAR(lp.top[0].logprob, 1000.0 - lse, 1e-5);
  EXPECT_EQ(lp.top[1].id, 1);
}

TEST(Logprobs, TiesRankByLowerIdAndEqualLogitsShareProbability) {
  const std::vector<float> row = {0.5f, 2.0f, 0.5f, 2.0f, 2.0f, -1.0f};
  const RowLogprobs lp = ComputeLogprobs(row, 4, 4);
  ASSERT_EQ(lp.top.size(), 4u);
  EXPECT_EQ(lp.top[0].id, 1);
  EXPECT_EQ(lp.top[1].id, 3);
  EXPECT_EQ(lp.top[2].id, 4);
  EXPECT_EQ(lp.top[3].id, 0);
  EXPECT_EQ(lp.top[0].logprob, lp.top[2].logprob);
  EXPECT_EQ(lp.token_logprob, lp.top[1].logprob);
}

TEST(Logprobs, MaskedEntriesHaveNoProbabilityAndStayOutOfTop) {
  const std::vector<float> row = {-kInf, std::log(0.25f), std::nanf(""), std::log(0.75f)};
  const RowLogprobs lp = ComputeLogprobs(row, 0, 4);
  EXPECT_EQ(lp.token_logprob, -kInf);
  ASSERT_EQ(lp.top.size(), 2u) << "only the two tokens with probability";
  EXPECT_EQ(lp.top[0].id, 3);
  EXPECT_NEAR(lp.top[0].logprob, std::log(0.75), 1e-6);
  EXPECT_NEAR(lp.top[1].logprob, std::log(0.25), 1e-6);
  EXPECT_EQ(ComputeLogprobs(row, 2, 0).token_logprob, -kInf) << "NaN logit";
}

TEST(Logprobs, DegenerateRows) {
  const std::vector<float> all_masked = {-kInf, -kInf, std::nanf("")};
  RowLogprobs lp = ComputeLogprobs(all_masked, 1, 3);
  EXPECT_EQ(lp.token_logprob, -kInf);
  EXPECT_TRUE(lp.top.empty());

  const std::vector<float> with_inf = {kInf, 3.0f, kInf};
  lp = ComputeLogprobs(with_inf, 2, 3);
  EXPECT_NEAR(lp.token_logprob, std::log(0.5), 1e-7);
  ASSERT_EQ(lp.top.size(), 3u);
  EXPECT_EQ(lp.top[0].id, 0);
  EXPECT_EQ(lp.top[1].id, 2);
  EXPECT_EQ(lp.top[2].id, 1);
  EXPECT_EQ(lp.top[2].logprob, -kInf);
  EXPECT_EQ(ComputeLogprobs(with_inf, 1, 0).token_logprob, -kInf);
}

}  // namespace
}  // namespace baton
