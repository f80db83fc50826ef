#include "stages/pipeline_runner.h"

#include "stages/local_runner.h"
#include "stages/sampled_step_codec.h"
#include "stages/step_plan_codec.h"

namespace baton {

PipelineRunner::PipelineRunner(Stage& first_stage, Communicator& pipeline, PipelineTrace* trace,
                               Communicator* activations)
    : stage_(first_stage),
      pipeline_(pipeline),
      activations_(activations != nullptr ? *activations : pipeline),
      trace_(trace) {}

PipelineRunner::~PipelineRunner() {
  if (!shut_down_) (void)Shutdown();
}

Status PipelineRunner::ReapSends(bool wait_all) {
  while (!sends_.empty()) {
    PendingSend& front = sends_.front();
    if (wait_all) {
      BATON_RETURN_IF_ERROR(pipeline_.Wait(front.plan_request));
      BATON_RETURN_IF_ERROR(activations_.Wait(front.request));
    } else {
      BATON_ASSIGN_OR_RETURN(bool plan_done, pipeline_.Test(front.plan_request));
      if (!plan_done) break;
      BATON_ASSIGN_OR_RETURN(bool done, activations_.Test(front.request));
      if (!done) break;
    }
    sends_.pop_front();
  }
  return Status::Ok();
}

Status PipelineRunner::Submit(const StepPlan& plan) {
  BATON_RETURN_IF_ERROR(ValidateStepPlan(plan, stage_.config()));
  BATON_RETURN_IF_ERROR(ReapSends(/*wait_all=*/false));
  DeviceStepPlan device = UploadStepPlan(plan, stage_.backend());
  Tensor hidden;
  {
    PipelineTrace::Scope span(trace_, "compute", plan.micro_batch);
    BusyTime::Scope busy(busy_);
    hidden = stage_.Embed(device);
    stage_.RunLayers(device, hidden);
  }
  PipelineTrace::Scope span(trace_, "send", plan.micro_batch);
  StepPlan sent = plan;
  sent.stage_busy_us = {busy_.total_us()};
  // Both sends are non-blocking: a plan past MPI's eager size waits for
  // the next rank to post its receive, which it does only after its current
  // step, and this rank would sit out that step (5 % of its time with GPT-2
  // on two CPU ranks) instead of computing the next micro-batch.
  PendingSend pending;
  pending.plan = EncodeStepPlan(sent);
  BATON_ASSIGN_OR_RETURN(pending.plan_request, pipeline_.ISend(pending.plan.data(), pending.plan.size(), 1, kPlanTag));
  pending.buffer = hidden;
  BATON_ASSIGN_OR_RETURN(pending.request, activations_.ISend(hidden.raw(), hidden.nbytes(), 1, kHiddenTag));
  sends_.push_back(std::move(pending));
  in_flight_.push_back(InFlight{plan.return_logits ? device.logit_rows.numel() : static_cast<int64_t>(plan.seqs.size()),
                                plan.return_logits, plan.micro_batch});
  return Status::Ok();
}

StatusOr<StepOutput> PipelineRunner::Collect() {
  if (in_flight_.empty()) return Status::FailedPrecondition("Collect without a submitted step");
  const InFlight step = in_flight_.front();
  in_flight_.pop_front();
  StepOutput out;
  {
    PipelineTrace::Scope span(trace_, "wait", step.micro_batch);
    const int last = pipeline_.size() - 1;
    if (step.logits) {
      out.logits = Tensor::Empty({step.rows, stage_.config().vocab_size}, DType::kF32);
      BATON_RETURN_IF_ERROR(pipeline_.Recv(out.logits, last, kLogitsTag));
    } else {
      BATON_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, pipeline_.RecvBytes(last, kLogitsTag));
      BATON_ASSIGN_OR_RETURN(out, DecodeSampledStep(bytes, static_cast<size_t>(step.rows)));
      if (!out.stage_busy_us.empty()) stage_busy_us_ = out.stage_busy_us;
    }
  }
  BATON_RETURN_IF_ERROR(ReapSends(/*wait_all=*/false));
  return out;
}

Status PipelineRunner::Shutdown() {
  if (shut_down_) return Status::Ok();
  shut_down_ = true;
  BATON_RETURN_IF_ERROR(ReapSends(/*wait_all=*/true));
  return pipeline_.SendBytes(EncodeStepPlan(StepPlan{}), 1, kPlanTag);
}

Status RunPipelineWorker(Stage& stage, Communicator& pipeline, PipelineTrace* trace, Communicator* activations) {
  Communicator& hidden_comm = activations != nullptr ? *activations : pipeline;
  const int prev = pipeline.rank() - 1, next = pipeline.rank() + 1;
  const bool last = next == pipeline.size();
  const int64_t hidden_size = stage.config().hidden_size;
  // The previous micro-batch's send (hidden states to the next rank on
  // hidden_comm, or the answer to rank 0 on pipeline) and its communicator.
  Request send;
  Communicator* send_comm = &pipeline;
  Tensor send_buffer;                 // and its buffer, alive until that send completes
  std::vector<uint8_t> token_buffer;  // a sampled step's answer, alive until sent
  Request plan_send;                  // a middle stage's plan to the next rank (see Submit)
  std::vector<uint8_t> plan_buffer;   // and its bytes, alive until sent
  SamplerBank samplers;               // the last stage samples
  BusyTime busy;
  while (true) {
    const auto recv_start = PipelineTrace::Clock::now();
    BATON_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, pipeline.RecvBytes(prev, kPlanTag));
    BATON_ASSIGN_OR_RETURN(StepPlan plan, DecodeStepPlan(bytes));
    if (plan.seqs.empty()) {  // stop: pass it on and leave
      BATON_RETURN_IF_ERROR(send_comm->Wait(send));
      BATON_RETURN_IF_ERROR(pipeline.Wait(plan_send));
      return last ? Status::Ok() : pipeline.SendBytes(bytes, next, kPlanTag);
    }
    Tensor hidden = stage.backend().Allocate({plan.num_tokens(), hidden_size}, stage.backend().compute_dtype());
    BATON_RETURN_IF_ERROR(hidden_comm.Recv(hidden, prev, kHiddenTag));
    if (trace) trace->Add("recv", plan.micro_batch, recv_start);
    DeviceStepPlan device = UploadStepPlan(plan, stage.backend());
    StepOutput out;
    {
      PipelineTrace::Scope span(trace, "compute", plan.micro_batch);
      BusyTime::Scope busy_scope(busy);
      stage.RunLayers(device, hidden);
      if (last) {
        BATON_ASSIGN_OR_RETURN(out, FinishStep(plan, stage.DeviceLogits(device, hidden), samplers, stage.backend()));
      }
    }
    PipelineTrace::Scope span(trace, "send", plan.micro_batch);
    plan.stage_busy_us.push_back(busy.total_us());
    BATON_RETURN_IF_ERROR(send_comm->Wait(send));
    send_comm = last ? &pipeline : &hidden_comm;
    if (last && plan.return_logits) {
      send_buffer = out.logits;
      BATON_ASSIGN_OR_RETURN(send, pipeline.ISend(send_buffer.raw(), send_buffer.nbytes(), 0, kLogitsTag));
    } else if (last) {
      // Not SendBytes: a blocking send here could wait on rank 0 while rank 0
      // waits to send this rank the next plan. RecvBytes takes its size.
      out.stage_busy_us = plan.stage_busy_us;
      token_buffer = EncodeSampledStep(out);
      BATON_ASSIGN_OR_RETURN(send, pipeline.ISend(token_buffer.data(), token_buffer.size(), 0, kLogitsTag));
    } else {
      BATON_RETURN_IF_ERROR(pipeline.Wait(plan_send));
      plan_buffer = EncodeStepPlan(plan);
      BATON_ASSIGN_OR_RETURN(plan_send, pipeline.ISend(plan_buffer.data(), plan_buffer.size(), next, kPlanTag));
      send_buffer = hidden;
      BATON_ASSIGN_OR_RETURN(send, hidden_comm.ISend(send_buffer.raw(), send_buffer.nbytes(), next, kHiddenTag));
    }
  }
}

}  // namespace baton
