// LocalRunner: a ModelRunner over one Stage holding the whole model, in this
// process. Submit runs the step (and samples) at once; Collect hands the
// results back in order.
#pragma once

#include <deque>

#include "runtime/serving/model_runner.h"
#include "stages/busy_time.h"
#include "stages/pipeline_trace.h"
#include "stages/sampler_bank.h"
#include "stages/stage.h"

namespace baton {

class LocalRunner final : public ModelRunner {
 public:
  explicit LocalRunner(Stage& stage, PipelineTrace* trace = nullptr) : stage_(stage), trace_(trace) {}

  const ModelConfig& config() const override { return stage_.config(); }
  int preferred_in_flight() const override { return 1; }
  Status Submit(const StepPlan& plan) override;
  StatusOr<StepOutput> Collect() override;
  std::vector<double> StageBusySeconds() const override { return BusySeconds({busy_.total_us()}); }

 private:
  Stage& stage_;
  PipelineTrace* trace_;
  SamplerBank samplers_;
  std::deque<StatusOr<StepOutput>> done_;
  BusyTime busy_;
};

// What the last stage returns for a plan: the logits, or one sampled token
// per sequence and the logprobs asked for (shared by LocalRunner and the
// last pipeline stage). `logits` are in `backend`'s memory (Stage::DeviceLogits).
StatusOr<StepOutput> FinishStep(const StepPlan& plan, Tensor logits, SamplerBank& samplers, Backend& backend);

}  // namespace baton
