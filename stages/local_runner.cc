#include "stages/local_runner.h"

#include <cstdlib>
#include <cstring>
#include <utility>

namespace baton {
namespace {

bool RunAheadAllowed() {
  const char* v = std::getenv("BATON_RUN_AHEAD");
  return v == nullptr || !(std::strcmp(v, "off") == 0 || std::strcmp(v, "0") == 0);
}

}  // namespace

StatusOr<StepOutput> FinishStep(const StepPlan& plan, Tensor logits, SamplerBank& samplers, Backend& backend) {
  StepOutput out;
  if (plan.return_logits) {
    out.logits = backend.ToHostF32(logits);
  } else {
    BATON_ASSIGN_OR_RETURN(out, samplers.Sample(plan, logits, backend));
  }
  return out;
}

LocalRunner::LocalRunner(Stage& stage, PipelineTrace* trace, bool run_ahead)
    : stage_(stage), trace_(trace), run_ahead_((run_ahead || stage.backend().AsyncGreedy()) && RunAheadAllowed()) {}

LocalRunner::~LocalRunner() {
  std::vector<int32_t> dropped;
  for (Submitted& step : submitted_) {
    if (step.pending) stage_.backend().FinishTokens(step.ticket, dropped);
  }
}

// A continuing plan's tokens: the last step's ids on the device while its
// picks are pending (`device_ids`), else its host tokens copied into
// `resolved`. Returns the plan to run.
StatusOr<const StepPlan*> LocalRunner::Resolve(const StepPlan& plan, StepPlan& resolved, const Tensor*& device_ids) {
  device_ids = nullptr;
  if (!plan.continues_previous) return &plan;
  if (!run_ahead_) return Status::Internal("a continuing plan reached a runner that declines them");
  BATON_RETURN_IF_ERROR(last_status_);
  if (last_pending_) {
    device_ids = &last_ids_;
    return &plan;
  }
  if (last_tokens_.size() != plan.seqs.size()) {
    return Status::Internal("a continuing plan of " + std::to_string(plan.seqs.size()) + " sequences after a step of " +
                            std::to_string(last_tokens_.size()));
  }
  resolved = plan;
  resolved.token_ids = last_tokens_;
  return &resolved;
}

Status LocalRunner::Submit(const StepPlan& plan) {
  PipelineTrace::Scope span(trace_, "compute", plan.micro_batch);
  BusyTime::Scope busy(busy_);
  Submitted step;
  StepPlan resolved;
  const Tensor* device_ids = nullptr;
  StatusOr<const StepPlan*> run = Resolve(plan, resolved, device_ids);
  Backend& backend = stage_.backend();
  const bool async_greedy = run.ok() && backend.AsyncGreedy() && samplers_.AllGreedy(*run.value());
  Tensor picked;  // the step's own argmax, where it takes one
  StatusOr<Tensor> logits =
      run.ok() ? stage_.ForwardToDevice(*run.value(), device_ids, async_greedy ? &picked : nullptr) : run.status();
  if (!logits.ok()) {
    step.output = logits.status();
  } else if (async_greedy) {
    const Status started = samplers_.StartGreedy(*run.value(), logits.value(), picked, backend, step.ticket);
    step.pending = started.ok();
    if (!started.ok()) step.output = started;
  } else {
    step.output = FinishStep(*run.value(), std::move(logits).value(), samplers_, backend);
  }
  // What a continuing plan takes next.
  last_pending_ = step.pending;
  last_ids_ = step.pending ? step.ticket.ids : Tensor();
  last_status_ = step.output.ok() ? Status::Ok() : step.output.status();
  last_tokens_ = step.output.ok() && !step.pending ? step.output.value().tokens : std::vector<int32_t>{};
  submitted_.push_back(std::move(step));
  return Status::Ok();
}

StatusOr<StepOutput> LocalRunner::Collect() {
  if (submitted_.empty()) return Status::FailedPrecondition("Collect without a submitted step");
  Submitted step = std::move(submitted_.front());
  submitted_.pop_front();
  if (step.pending) {
    BusyTime::Scope busy(busy_);
    StepOutput out;
    stage_.backend().FinishTokens(step.ticket, out.tokens);
    return out;
  }
  return std::move(step.output);
}

}  // namespace baton
