// Sampler: turns one row of logits into the next token id of one sequence.
//
// Applies the Hugging Face generate() logits processors in their order:
// repetition penalty, temperature, top-k, top-p, min-p; then draws from the
// softmax of what is left. Greedy (temperature 0) is the argmax after the
// repetition penalty, the lowest id on ties.
//
// Each sequence owns its Sampler and so its random stream: the same seed
// gives the same tokens whatever else runs in the batch. A non-greedy
// Sample() call makes exactly one random draw, whatever the row holds, so a
// sampler rebuilt after preemption continues the stream by skipping as many
// draws as the old one made (SkipDraws); greedy sampling draws nothing. Not thread-safe;
// one thread at a time per Sampler. Scratch buffers (vocab-sized) are kept
// between calls and only grow, so steady-state Sample() calls do not allocate.
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "runtime/sampling/logprobs.h"
#include "runtime/sampling/sampling_params.h"

namespace baton {

class Sampler {
 public:
  // `params` must have passed Validate().
  explicit Sampler(const SamplingParams& params);

  // logits: one row of vocab floats (read only). Finite values and -inf
  // (a masked token) are expected; NaN entries are never chosen.
  // context: every token id seen so far (prompt + generated), for the
  // repetition penalty; ids outside [0, vocab) are ignored.
  // Returns -1 only for an empty row. A row with nothing to draw from (all
  // -inf or NaN) or a +inf logit falls back to the argmax.
  int32_t Sample(std::span<const float> logits, std::span<const int32_t> context);

  // The n most likely tokens (log-probability, highest first, lowest id on
  // ties) of the distribution the last Sample() drew from: the processed
  // candidates when sampling, the softmax of the penalized logits when
  // greedy. Empty before the first Sample() or after a fallback. Allocates.
  // Requests' logprobs are of the raw distribution instead (ComputeLogprobs,
  // logprobs.h); this one shows what the processors left.
  std::vector<TokenLogprob> TopLogprobs(size_t n) const;

  // Advances the random stream past n draws, as if Sample() had been called
  // n times. Does nothing for a greedy sampler (it never draws).
  void SkipDraws(uint64_t n);
  // Draws made so far, skipped ones included.
  uint64_t draws() const { return draws_; }

  const SamplingParams& params() const { return params_; }

 private:
  struct Candidate {
    int32_t id;
    float logit;
    float weight;  // exp(logit - max_logit_): softmax up to normalization
  };
  enum class LastDistribution { kNone, kPenalizedLogits, kCandidates };

  void CopyLogits(std::span<const float> logits, std::span<const int32_t> context);
  float KthLargestLogit(size_t k);
  void GatherWeightedCandidates(float threshold);
  void KeepTopP();
  void KeepMinP();
  int32_t Draw(double uniform);
  double UniformDouble();

  SamplingParams params_;
  std::mt19937_64 rng_;
  uint64_t draws_ = 0;

  std::vector<float> logits_;          // scratch copy, processed
  std::vector<float> kth_scratch_;     // heap / selection space for top-k
  std::vector<float> row_weights_;     // exp(logit - max) of every logit, before the gather
  std::vector<Candidate> candidates_;  // tokens still in the running
  std::vector<double> bin_mass_;       // top-p: weight per distance-below-max bin
  float max_logit_ = 0.0f;             // of the candidates; the top one always survives
  double total_weight_ = 0.0;          // sum of the candidates' weights
  LastDistribution last_ = LastDistribution::kNone;
};

}  // namespace baton
