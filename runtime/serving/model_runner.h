// ModelRunner: how the generation loop reaches the model, whether it lives
// in this process (one stage) or across a pipeline of ranks.
//
// Submit starts a forward step; Collect returns the result of the oldest
// submitted step not yet collected (steps finish in submission order). A
// pipeline keeps several steps in flight between the two calls, which is
// what keeps every stage busy. The stage that computes logits also samples
// (each sequence's sampler lives there), so a step's result is one token
// per sequence, or the logits when the plan asks for them.
// Used by one thread.
#pragma once

#include <utility>
#include <vector>

#include "runtime/core/tensor.h"
#include "runtime/model/model_config.h"
#include "runtime/model/step_plan.h"

namespace baton {

// The log-probability of a sampled token under the model's raw
// distribution, and the `n` most likely tokens (most likely first).
struct TokenLogprobs {
  float logprob = 0.0f;
  std::vector<std::pair<int32_t, float>> top;  // (token id, logprob)
};

struct StepOutput {
  std::vector<int32_t> tokens;  // one per sequence of the plan (unless return_logits)
  Tensor logits;                // float32 host [logit rows, vocab] when plan.return_logits
  // One per sequence when any sequence of the plan asked for logprobs
  // (SequenceStep::logprobs >= 0 at registration), else empty. Entries of
  // sequences that did not ask are default (logprob 0, no top).
  std::vector<TokenLogprobs> logprobs;
  // Telemetry: each stage's cumulative compute time (microseconds, stage
  // order) when it finished this step; empty when not reported.
  std::vector<int64_t> stage_busy_us;
};

class ModelRunner {
 public:
  virtual ~ModelRunner() = default;
  virtual const ModelConfig& config() const = 0;
  // How many steps may be in flight at once for the pipeline to stay busy
  // (1 for a single stage, the number of stages for a pipeline).
  virtual int preferred_in_flight() const = 0;
  // Whether Submit takes a plan with continues_previous: the runner feeds
  // each sequence the token it samples in the step submitted before, which
  // need not have been collected yet.
  virtual bool can_run_ahead() const { return false; }
  virtual Status Submit(const StepPlan& plan) = 0;
  virtual StatusOr<StepOutput> Collect() = 0;
  // Each stage's cumulative compute seconds, in stage order, as last
  // reported by a collected step (utilization metrics); empty if unknown.
  virtual std::vector<double> StageBusySeconds() const { return {}; }
};

}  // namespace baton
