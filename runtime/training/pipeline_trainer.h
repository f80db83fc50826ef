// PipelineTrainer: one rank's part of a pp x dp training job, on the CPU or
// on the GPU of a TrainingOps.
//
// The model's layers are split into pp stages (one per rank of `pipeline`);
// each stage is replicated dp times (the ranks of `data_parallel`), every
// replica taking an equal share of each step's sequences. Within a stage's
// dp group the parameters, gradients and AdamW moments are ZeRO-3 shards
// (zero_stage 3), or replicated with gradients all-reduced (zero_stage 0).
// A replica cuts its share into micro-batches and runs them through the
// pipeline with the GPipe or 1F1B schedule, activations and their gradients
// moving between stages by non-blocking send.
//
// With tied embeddings and pp > 1, the last stage keeps a copy of the
// embedding as its LM head; the two copies' gradients are summed after each
// backward, so both apply the same update and stay equal.
//
// Every call is collective over the whole job (all ranks call it with the
// same arguments). With null communicators it is the plain one-process
// trainer. One thread at a time.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "runtime/comm/communicator.h"
#include "runtime/training/adamw.h"
#include "runtime/training/pipeline_schedule.h"
#include "runtime/training/train_batch.h"
#include "runtime/training/training_stage.h"

namespace baton {

struct TrainerOptions {
  int zero_stage = 3;  // 0 or 3; only matters with dp > 1
  ScheduleKind schedule = ScheduleKind::kOneFOneB;
  int micro_batches = 1;  // per replica, per optimizer step
  bool activation_checkpointing = false;
  // AdamW's moments live in host memory and the update runs on the CPU
  // (ZeRO-Offload's split): each step the gradient shards come to the host
  // and the updated float32 master shards go back. Saves 8 bytes a
  // parameter of device memory for PCIe traffic and CPU time.
  bool offload_optimizer = false;
  AdamWOptions adamw;
};

// Where a rank's math runs: `ops` (null: float32 on the CPU) and the
// communicators that move its memory (null: the host groups given to
// Create; a GPU needs NCCL groups over the same ranks). Control values
// (losses, norms) always travel over the host groups.
struct TrainerDevice {
  TrainingOps* ops = nullptr;
  Communicator* pipeline = nullptr;
  // Gradients going back through the pipeline. NCCL runs a communicator's
  // operations in the order they were posted, so a stage that posts a send
  // forward and then a receive from the same peer would wait on that peer's
  // own send backward: two communicators (two streams) keep the directions
  // apart. Null: `pipeline`.
  Communicator* pipeline_grads = nullptr;
  Communicator* data_parallel = nullptr;
};

// Per-rank bytes, for the memory report.
struct TrainMemory {
  size_t stage_parameter_bytes = 0;  // the whole stage's parameters, unsharded (for comparison)
  size_t parameter_bytes = 0;        // this rank's parameter shards
  size_t gradient_bytes = 0;         // this rank's gradient shards
  size_t optimizer_bytes = 0;        // AdamW moments of this rank's shards
  bool optimizer_on_host = false;    // --offload-optimizer: those bytes are host memory
  size_t peak_gathered_bytes = 0;    // ZeRO-3: full layers materialised at once
  size_t peak_activation_bytes = 0;  // kept for backward, across live micro-batches
};

class PipelineTrainer {
 public:
  // `stages`: every stage's layer range, in order (pp of them);
  // `pipeline` / `data_parallel`: this rank's groups (null: a group of one).
  static StatusOr<std::unique_ptr<PipelineTrainer>> Create(const std::string& model_dir, std::vector<StageRange> stages,
                                                           const TrainerOptions& options, Communicator* pipeline,
                                                           Communicator* data_parallel,
                                                           const TrainerDevice& device = {});

  // Forward and backward of the whole global batch (this replica takes its
  // share): afterwards every shard holds its part of the gradient of the
  // mean loss over the batch. Returns that loss (same on every rank).
  StatusOr<LossSum> ComputeGradients(const TrainBatch& global_batch);
  // Clips by the global gradient norm (max_norm <= 0: no clipping), then one
  // AdamW step at `lr`. Returns the norm before clipping.
  StatusOr<double> ApplyUpdate(double lr, double max_norm);
  // The mean loss of the global batch, no gradients.
  StatusOr<LossSum> Evaluate(const TrainBatch& global_batch);

  // The whole model's parameters (grads = false) or accumulated gradients
  // as one StageWeights of all layers, on the root rank; nullopt elsewhere.
  StatusOr<std::optional<StageWeights>> GatherModel(bool grads);
  // Writes the trained model as a Hugging Face folder (the root writes).
  Status ExportHf(const std::string& out_dir);

  // Sharded save / resume of everything a continued run needs: this
  // rank's parameter shards, AdamW moments and step. `job_meta` is what the
  // caller wants back on resume (flags, data position), written by the root.
  Status SaveCheckpoint(const std::string& dir, int64_t step, const nlohmann::json& job_meta);
  // Returns the saved job_meta.
  StatusOr<nlohmann::json> LoadCheckpoint(const std::string& dir, int64_t step);

  bool is_root() const { return pipeline_rank() == 0 && dp_rank() == 0; }
  const ModelConfig& config() const { return config_; }
  const TrainingStage& stage() const { return *stage_; }
  const AdamW& optimizer() const { return *adamw_; }
  TrainMemory memory() const;

 private:
  PipelineTrainer() = default;
  int pipeline_rank() const { return pipeline_ ? pipeline_->rank() : 0; }
  int pipeline_size() const { return pipeline_ ? pipeline_->size() : 1; }
  int dp_rank() const { return data_parallel_ ? data_parallel_->rank() : 0; }
  int dp_size() const { return data_parallel_ ? data_parallel_->size() : 1; }
  // This replica's micro-batches of a global batch, laid out.
  StatusOr<std::vector<BatchLayout>> MicroBatches(const TrainBatch& global_batch) const;
  StatusOr<LossSum> RunSchedule(const std::vector<BatchLayout>& micro_batches, bool train, float grad_scale);
  Status SumTiedEmbeddingGrads();
  // Sums values over the whole job (pipeline, then data-parallel group).
  Status SumOverJob(std::vector<double>& values);
  std::vector<Tensor> Shards();
  std::vector<Tensor> GradShards();
  // Host <-> the ops' device, for checkpoints.
  Tensor ToHost(const Tensor& t);
  Tensor ToDevice(const Tensor& host);
  // Where AdamW's moments live: the device, or the host when offloaded.
  Tensor ToMomentMemory(const Tensor& host) { return options_.offload_optimizer ? host : ToDevice(host); }
  void OffloadedStep(std::vector<Tensor>& params, const std::vector<Tensor>& grads, double lr, float grad_scale);

  std::string model_dir_;
  ModelConfig config_;
  std::vector<StageRange> stages_;
  TrainerOptions options_;
  Communicator* pipeline_ = nullptr;
  Communicator* data_parallel_ = nullptr;
  Communicator* device_pipeline_ = nullptr;        // activations forward, tied-embedding gradients
  Communicator* device_pipeline_grads_ = nullptr;  // activation gradients backward
  Communicator* device_dp_ = nullptr;
  std::unique_ptr<TrainingOps> own_ops_;  // the CPU's, when none was given
  TrainingOps* ops_ = nullptr;
  std::unique_ptr<TrainingStage> stage_;
  std::unique_ptr<AdamW> adamw_;
  std::unique_ptr<TrainingOps> host_ops_;  // --offload-optimizer: the CPU's, for the update
};

}  // namespace baton
