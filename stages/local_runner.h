// LocalRunner: a ModelRunner over one Stage holding the whole model, in this
// process. Submit queues the step and its sampling on the backend; Collect
// hands the results back in order. Greedy steps on a backend that samples
// without waiting (Backend::AsyncGreedy) are waited for only in Collect, and
// a plan that continues the one before (the scheduler's run-ahead) takes its
// tokens straight from that step's ids on the device, so the next step is
// queued while the current one still runs. Elsewhere Submit runs the step to
// the end and a continuation gets the tokens the step before returned.
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
  // `run_ahead`: take continuing plans (can_run_ahead) even where the
  // backend samples synchronously (then it gains nothing: tests use it).
  // Off, or BATON_RUN_AHEAD=off in the environment, declines them.
  explicit LocalRunner(Stage& stage, PipelineTrace* trace = nullptr, bool run_ahead = false);
  // Waits for picks still pending, which hold the backend's landing places.
  ~LocalRunner() override;

  const ModelConfig& config() const override { return stage_.config(); }
  int preferred_in_flight() const override { return 1; }
  bool can_run_ahead() const override { return run_ahead_; }
  Status Submit(const StepPlan& plan) override;
  StatusOr<StepOutput> Collect() override;
  std::vector<double> StageBusySeconds() const override { return BusySeconds({busy_.total_us()}); }

 private:
  // A submitted step: its output, or the ticket of its picks still on the
  // device.
  struct Submitted {
    StatusOr<StepOutput> output = StepOutput{};
    bool pending = false;
    Backend::TokenTicket ticket;
  };
  StatusOr<const StepPlan*> Resolve(const StepPlan& plan, StepPlan& resolved, const Tensor*& device_ids);

  Stage& stage_;
  PipelineTrace* trace_;
  bool run_ahead_;
  SamplerBank samplers_;
  std::deque<Submitted> submitted_;  // not yet collected, oldest first
  // The last submitted step's tokens, for a plan that continues it: on the
  // device while it is pending, else on the host.
  bool last_pending_ = false;
  Tensor last_ids_;
  std::vector<int32_t> last_tokens_;
  Status last_status_;
  BusyTime busy_;
};

// What the last stage returns for a plan: the logits, or one sampled token
// per sequence and the logprobs asked for (shared by LocalRunner and the
// last pipeline stage). `logits` are in `backend`'s memory (Stage::DeviceLogits).
StatusOr<StepOutput> FinishStep(const StepPlan& plan, Tensor logits, SamplerBank& samplers, Backend& backend);

}  // namespace baton
