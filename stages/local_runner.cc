#include "stages/local_runner.h"

namespace baton {

Status LocalRunner::Submit(const StepPlan& plan) {
  PipelineTrace::Scope span(trace_, "compute", plan.micro_batch);
  done_.push_back(stage_.Forward(plan));
  return Status::Ok();
}

StatusOr<Tensor> LocalRunner::Collect() {
  if (done_.empty()) return Status::FailedPrecondition("Collect without a submitted step");
  StatusOr<Tensor> logits = std::move(done_.front());
  done_.pop_front();
  return logits;
}

}  // namespace baton
