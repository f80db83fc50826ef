#include "stages/local_runner.h"

namespace baton {

StatusOr<StepOutput> FinishStep(const StepPlan& plan, Tensor logits, SamplerBank& samplers, Backend& backend) {
  StepOutput out;
  if (plan.return_logits) {
    out.logits = backend.ToHostF32(logits);
  } else {
    BATON_ASSIGN_OR_RETURN(out, samplers.Sample(plan, logits, backend));
  }
  return out;
}

Status LocalRunner::Submit(const StepPlan& plan) {
  PipelineTrace::Scope span(trace_, "compute", plan.micro_batch);
  BusyTime::Scope busy(busy_);
  StatusOr<Tensor> logits = stage_.ForwardToDevice(plan);
  done_.push_back(logits.ok() ? FinishStep(plan, std::move(logits).value(), samplers_, stage_.backend())
                              : logits.status());
  return Status::Ok();
}

StatusOr<StepOutput> LocalRunner::Collect() {
  if (done_.empty()) return Status::FailedPrecondition("Collect without a submitted step");
  StatusOr<StepOutput> out = std::move(done_.front());
  done_.pop_front();
  return out;
}

}  // namespace baton
