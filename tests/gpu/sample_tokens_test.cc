// CudaBackend::SampleTokens against the host Sampler (runtime/sampling) on
// the same logits, parameters and uniform draws: many random rows, vocab
// sizes and parameter sets, in F32 and BF16 storage. A differing id is
// allowed only where the draw sits within rounding of a CDF step (the GPU
// itself flips to the host's id when the uniform moves by 1e-9 relative);
// those are counted and must stay rare. Rows the GPU leaves to the host
// (kSampleOnHost) are counted too and must stay a minority.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>

#include "runtime/sampling/sampler.h"
#include "tests/gpu/gpu_test_util.h"

namespace baton::testing {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// What Sampler's engine gives for its next draw (UniformDouble).
double NextUniform(std::mt19937_64& engine) { return static_cast<double>(engine() >> 11) * 0x1.0p-53; }

struct Case {
  SamplingParams params;
  std::vector<int32_t> history;
};

// Rows of random logits: normal with a random spread, some rows quantized
// (ties), a few -inf entries.
Tensor RandomLogits(std::mt19937& rng, int64_t rows, int64_t vocab, DType dtype) {
  Tensor t = Tensor::Empty({rows, vocab}, DType::kF32);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  for (int64_t r = 0; r < rows; ++r) {
    const float spread = 0.5f + 6.0f * unit(rng);
    const bool quantize = unit(rng) < 0.25f;
    std::normal_distribution<float> normal(0.0f, spread);
    float* row = t.data<float>() + r * vocab;
    for (int64_t v = 0; v < vocab; ++v) {
      float x = normal(rng);
      if (quantize) x = std::round(x * 4.0f) / 4.0f;
      if (unit(rng) < 0.001f) x = kNegInf;
      row[v] = x;
    }
  }
  return dtype == DType::kF32 ? t : t.ToDType(dtype).ToF32();  // what the device will hold
}

Case RandomCase(std::mt19937& rng, int64_t vocab) {
  auto pick = [&](auto values) { return values[std::uniform_int_distribution<size_t>(0, values.size() - 1)(rng)]; };
  Case c;
  c.params.temperature = pick(std::vector<float>{0.0f, 0.5f, 0.8f, 1.0f, 1.0f, 1.3f});
  c.params.top_k = pick(std::vector<int>{0, 0, 1, 5, 50, 1000});
  c.params.top_p = pick(std::vector<float>{1.0f, 1.0f, 0.3f, 0.9f, 0.95f, 0.99f});
  c.params.min_p = pick(std::vector<float>{0.0f, 0.0f, 0.05f, 0.2f});
  c.params.repetition_penalty = pick(std::vector<float>{1.0f, 1.0f, 1.3f, 0.8f});
  c.params.seed = rng();
  const int len = std::uniform_int_distribution<int>(1, 80)(rng);
  for (int i = 0; i < len; ++i) {
    c.history.push_back(std::uniform_int_distribution<int32_t>(0, static_cast<int32_t>(vocab) - 1)(rng));
  }
  if (len > 4) c.history[3] = c.history[1];  // repeated ids are penalized once
  return c;
}

SampleBatch MakeBatch(const std::vector<Case>& cases, const std::vector<double>& uniforms) {
  SampleBatch batch;
  for (size_t i = 0; i < cases.size(); ++i) {
    const SamplingParams& p = cases[i].params;
    SampleRow row;
    row.temperature = p.temperature;
    row.top_k = p.top_k;
    row.top_p = p.top_p;
    row.min_p = p.min_p;
    row.repetition_penalty = p.repetition_penalty;
    row.uniform = uniforms[i];
    row.context_begin = static_cast<int32_t>(batch.context.size());
    batch.context.insert(batch.context.end(), cases[i].history.begin(), cases[i].history.end());
    row.context_end = static_cast<int32_t>(batch.context.size());
    batch.rows.push_back(row);
  }
  return batch;
}

class SampleTokensTest : public ::testing::TestWithParam<DType> {};

TEST_P(SampleTokensTest, SameIdsAsTheHostSampler) {
  const DType dtype = GetParam();
  BATON_GPU_OR_SKIP(gpu, dtype);
  std::mt19937 rng(2024);
  int total = 0, equal = 0, rounding = 0, on_host = 0, sampled_top_p = 0;
  for (int64_t vocab : {257, 1000, 32000, 128256}) {
    const int rounds = vocab > 100000 ? 2 : 6;
    for (int round = 0; round < rounds; ++round) {
      const int64_t rows = 48;
      Tensor logits = RandomLogits(rng, rows, vocab, dtype);
      Tensor device = gpu->Upload(logits, dtype);
      std::vector<Case> cases;
      std::vector<double> uniforms;
      std::vector<int32_t> expected;
      for (int64_t r = 0; r < rows; ++r) {
        cases.push_back(RandomCase(rng, vocab));
        Sampler sampler(cases.back().params);
        std::mt19937_64 engine(cases.back().params.seed);
        // A few draws in, as a sequence several tokens along.
        const int skip = static_cast<int>(r % 3);
        sampler.SkipDraws(static_cast<uint64_t>(skip));
        if (!cases.back().params.greedy()) engine.discard(static_cast<uint64_t>(skip));
        uniforms.push_back(cases.back().params.greedy() ? 0.0 : NextUniform(engine));
        std::span<const float> row(logits.data<float>() + r * vocab, static_cast<size_t>(vocab));
        expected.push_back(sampler.Sample(row, cases.back().history));
      }
      std::vector<int32_t> got;
      gpu->SampleTokens(device, MakeBatch(cases, uniforms), got);
      ASSERT_EQ(got.size(), static_cast<size_t>(rows));
      for (int64_t r = 0; r < rows; ++r) {
        ++total;
        if (got[r] == kSampleOnHost) {
          ++on_host;
          continue;
        }
        if (cases[r].params.top_p < 1.0f && !cases[r].params.greedy()) ++sampled_top_p;
        if (got[r] == expected[r]) {
          ++equal;
          continue;
        }
        // Does the GPU reach the host's id with the draw moved by rounding?
        bool explained = false;
        for (double factor : {1.0 - 1e-9, 1.0 + 1e-9}) {
          std::vector<double> nudged = {std::min(uniforms[r] * factor, std::nextafter(1.0, 0.0))};
          Tensor one = gpu->Upload(logits.Rows(r, r + 1), dtype);
          std::vector<int32_t> again;
          gpu->SampleTokens(one, MakeBatch({cases[r]}, nudged), again);
          explained = explained || again[0] == expected[r];
        }
        EXPECT_TRUE(explained) << "vocab " << vocab << " row " << r << ": gpu " << got[r] << ", host " << expected[r]
                               << " (T " << cases[r].params.temperature << ", top_k " << cases[r].params.top_k
                               << ", top_p " << cases[r].params.top_p << ", min_p " << cases[r].params.min_p
                               << ", penalty " << cases[r].params.repetition_penalty << ", u " << uniforms[r] << ")";
        rounding += explained;
      }
    }
  }
  std::printf("  [%s] %d rows: %d equal, %d at a rounding step, %d left to the host; %d top-p rows on the GPU\n",
              DTypeName(dtype), total, equal, rounding, on_host, sampled_top_p);
  EXPECT_LE(rounding, total / 100);
  EXPECT_LE(on_host, total / 5);
  EXPECT_GT(sampled_top_p, total / 10);  // the partition-order walk is exercised
}

// All-greedy batches take LaunchGreedyTokens: 16-byte packs when the vocab
// divides by 8 (128256), element by element otherwise (50257).
TEST_P(SampleTokensTest, GreedyIsTheArgmaxWithTiesToTheLowestId) {
  const DType dtype = GetParam();
  BATON_GPU_OR_SKIP(gpu, dtype);
  std::mt19937 rng(7);
  for (const int64_t vocab : {50257, 128256}) {
    SCOPED_TRACE("vocab " + std::to_string(vocab));
    const int64_t rows = 6;
    Tensor logits = RandomLogits(rng, rows, vocab, dtype);
    float* x = logits.data<float>();
    x[0 * vocab + 777] = x[0 * vocab + 40000] = 100.0f;              // a tie: the lower id wins
    for (int64_t v = 0; v < vocab; ++v) x[1 * vocab + v] = kNegInf;  // nothing to pick: id 0
    x[2 * vocab + 31] = std::numeric_limits<float>::quiet_NaN();     // NaN never wins
    x[2 * vocab + 32] = 50.0f;
    x[3 * vocab + 5] = std::numeric_limits<float>::infinity();
    x[4 * vocab + 805] = x[4 * vocab + 803] = 90.0f;  // a tie inside one 8-element pack
    x[5 * vocab + vocab - 1] = 70.0f;                 // the last id
    Tensor device = gpu->Upload(logits, dtype);
    std::vector<Case> cases(rows);
    for (Case& c : cases) c.params.temperature = 0.0f;
    std::vector<int32_t> got;
    gpu->SampleTokens(device, MakeBatch(cases, std::vector<double>(rows, 0.0)), got);
    for (int64_t r = 0; r < rows; ++r) {
      int32_t best = 0;
      float best_value = kNegInf;
      for (int64_t v = 0; v < vocab; ++v) {
        if (x[r * vocab + v] > best_value) {
          best_value = x[r * vocab + v];
          best = static_cast<int32_t>(v);
        }
      }
      EXPECT_EQ(got[r], best) << "row " << r;
    }
    EXPECT_EQ(got[0], 777);
    EXPECT_EQ(got[1], 0);
    EXPECT_EQ(got[2], 32);
    EXPECT_EQ(got[3], 5);
    EXPECT_EQ(got[4], 803);
    EXPECT_EQ(got[5], vocab - 1);
  }
}

INSTANTIATE_TEST_SUITE_P(DTypes, SampleTokensTest, ::testing::Values(DType::kF32, DType::kBF16), DTypeParamName);

}  // namespace
}  // namespace baton::testing
