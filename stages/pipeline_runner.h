// Pipeline execution across ranks, GPipe-style: micro-batches flow from
// stage 0 to stage P-1 over the pipeline communicator, each with its
// StepPlan; the last stage returns to rank 0 the logits of the plan's rows,
// or the sampled tokens (and logprobs) in one message (sampled_step_codec.h).
//
// PipelineRunner is rank 0's side (stage 0 and the driver): Submit runs
// stage 0 and sends the micro-batch on without waiting, so while stage j
// works on micro-batch k stage 0 already works on k+1. RunPipelineWorker is
// every other rank's loop. Messages between two ranks arrive in the order
// they were sent, so steps come back in submission order.
//
// Two communicators over the same ranks: `pipeline` (host memory, MPI)
// carries the plans, logits and sampled tokens; `activations` carries the
// hidden states between stages and must move memory of the stage's
// backend. On the CPU both are the same MPI communicator; on CUDA
// `activations` is a NCCL one (nccl_factory.h), so hidden states go GPU to
// GPU. A stage receives each plan (MPI) before its hidden states (NCCL),
// and both arrive in send order, so the two streams never need matching.
// Thread-compatible: one thread per rank drives these.
#pragma once

#include <deque>

#include "runtime/comm/communicator.h"
#include "runtime/serving/model_runner.h"
#include "stages/busy_time.h"
#include "stages/pipeline_trace.h"
#include "stages/sampler_bank.h"
#include "stages/stage.h"

namespace baton {

// Message tags on the pipeline communicator.
inline constexpr int kPlanTag = 100;
inline constexpr int kHiddenTag = 101;
inline constexpr int kLogitsTag = 102;

class PipelineRunner final : public ModelRunner {
 public:
  // `first_stage` is this rank's stage 0; `pipeline` has the stages in rank
  // order, this rank being 0. `activations`, when not null, carries the
  // hidden states instead of `pipeline` (same ranks; not owned).
  // `trace`, when not null, records this rank's spans.
  PipelineRunner(Stage& first_stage, Communicator& pipeline, PipelineTrace* trace = nullptr,
                 Communicator* activations = nullptr);
  ~PipelineRunner() override;

  const ModelConfig& config() const override { return stage_.config(); }
  int preferred_in_flight() const override { return pipeline_.size(); }
  Status Submit(const StepPlan& plan) override;
  StatusOr<StepOutput> Collect() override;
  std::vector<double> StageBusySeconds() const override { return BusySeconds(stage_busy_us_); }
  // Tells the workers to stop (they return from RunPipelineWorker). Called
  // by the destructor if not before; later calls do nothing.
  Status Shutdown();

 private:
  // A step sent down the pipe: its plan and its hidden states, each with its
  // buffer kept alive until the send completes.
  struct PendingSend {
    Request plan_request;
    std::vector<uint8_t> plan;
    Request request;
    Tensor buffer;
  };
  Status ReapSends(bool wait_all);

  Stage& stage_;
  Communicator& pipeline_;
  Communicator& activations_;  // pipeline_ unless a NCCL one was given
  PipelineTrace* trace_;
  struct InFlight {
    int64_t rows;  // logit rows (return_logits) or sequences (sampled tokens)
    bool logits;
    int32_t micro_batch;
  };
  std::deque<InFlight> in_flight_;  // logit rows of each submitted step
  std::deque<PendingSend> sends_;   // hidden states, on activations_
  bool shut_down_ = false;
  BusyTime busy_;                      // this rank's stage
  std::vector<int64_t> stage_busy_us_;  // every stage's, from the last collected step
};

// Serves steps on a stage other than the first until rank 0 says stop.
// `activations` as for PipelineRunner.
Status RunPipelineWorker(Stage& stage, Communicator& pipeline, PipelineTrace* trace = nullptr,
                         Communicator* activations = nullptr);

}  // namespace baton
