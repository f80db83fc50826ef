// SamplerBank: the samplers of the sequences in flight, kept by the stage
// that computes logits (the last one), so that only token ids (and logprobs
// when asked) travel back to rank 0. A sequence is registered by the step
// plan that first carries its sampling parameters, sees every token of its
// later plans (the repetition penalty needs the whole history), and is
// dropped when a plan lists it as released.
//
// The picking itself goes through Backend::SampleTokens, so on a GPU only
// ids come back; the per-sequence random streams stay here: each sequence
// keeps, beside its Sampler, a copy of that Sampler's engine from which the
// step's uniform is drawn and handed to the backend (the Sampler then skips
// that draw), and rows the backend leaves to the host (kSampleOnHost) or
// that want logprobs are sampled or measured here from host logits.
// Thread-compatible.
#pragma once

#include <map>
#include <random>
#include <vector>

#include "runtime/model/step_plan.h"
#include "runtime/sampling/sampler.h"
#include "runtime/serving/model_runner.h"

namespace baton {

class SamplerBank {
 public:
  // From logits [sequences, vocab] (the plan's logit rows, one per
  // sequence): one token per sequence of `plan` (-1 where the step says
  // sample = false), and, when any sequence that sampled asked for them, one
  // TokenLogprobs per sequence (default entries for the others) of the raw
  // logits row. Registers (skipping sampler_draws_done draws), updates and
  // releases sequences as the plan says.
  // `logits` live in `backend`'s memory (Stage::DeviceLogits).
  StatusOr<StepOutput> Sample(const StepPlan& plan, const Tensor& logits, Backend& backend);
  // `logits` are float32 host memory; every row is sampled here.
  StatusOr<StepOutput> Sample(const StepPlan& plan, const Tensor& logits);
  // Whether every row of `plan` is a greedy pick without a repetition
  // penalty or logprobs; StartGreedy takes only such plans.
  bool AllGreedy(const StepPlan& plan) const;
  // Sample's bookkeeping, then the picks queued on the backend
  // (Backend::StartGreedyTokens), whose FinishTokens gives the tokens.
  // `picked`, when defined, are the picks the step itself made and lands
  // (Stage::ForwardToDevice's greedy_ids, Backend::StartStepTokens).
  Status StartGreedy(const StepPlan& plan, const Tensor& logits, const Tensor& picked, Backend& backend,
                     Backend::TokenTicket& ticket);
  size_t size() const { return sequences_.size(); }

 private:
  struct Entry {
    Sampler sampler;
    int32_t logprobs = -1;  // top-n to return with each token; -1 none
    // Every token seen, prompt and generated; kept only for a repetition
    // penalty, its one reader.
    std::vector<int32_t> history;
    // The engine of `sampler`, in step with it: Sampler::UniformDouble's
    // draw (53 bits of one 64-bit output) is made from this one.
    std::mt19937_64 draws;
  };
  // Releases, registers and extends the history as `plan` says; entries[i]
  // is sequence i's sampler, batch.rows[i] its row's parameters.
  Status Prepare(const StepPlan& plan, const Tensor& logits, std::vector<Entry*>& entries, SampleBatch& batch);
  StatusOr<StepOutput> SampleWith(const StepPlan& plan, const Tensor& logits, Backend* backend);
  std::map<int64_t, Entry> sequences_;
};

}  // namespace baton
