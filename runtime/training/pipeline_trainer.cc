#include "runtime/training/pipeline_trainer.h"

#include <cmath>
#include <cstring>

#include "runtime/checkpoint/checkpoint.h"
#include "runtime/training/cpu_training_ops.h"
#include "runtime/training/grad_clip.h"
#include "runtime/training/training_data.h"

namespace baton {
namespace {

// Activations go forward on even tags, their gradients back on odd ones.
int ForwardTag(int mb) { return 2 * mb; }
int BackwardTag(int mb) { return 2 * mb + 1; }

struct PendingSend {
  Request request;
  Tensor buffer;  // kept alive until the send completes
  Communicator* comm;
};

}  // namespace

StatusOr<std::unique_ptr<PipelineTrainer>> PipelineTrainer::Create(const std::string& model_dir,
                                                                   std::vector<StageRange> stages,
                                                                   const TrainerOptions& options,
                                                                   Communicator* pipeline, Communicator* data_parallel,
                                                                   const TrainerDevice& device) {
  std::unique_ptr<PipelineTrainer> t(new PipelineTrainer());
  t->model_dir_ = model_dir;
  t->stages_ = std::move(stages);
  t->options_ = options;
  t->pipeline_ = pipeline;
  t->data_parallel_ = data_parallel;
  t->device_pipeline_ = device.pipeline != nullptr ? device.pipeline : pipeline;
  t->device_pipeline_grads_ = device.pipeline_grads != nullptr ? device.pipeline_grads : t->device_pipeline_;
  t->device_dp_ = device.data_parallel != nullptr ? device.data_parallel : data_parallel;
  if (device.ops == nullptr) t->own_ops_ = std::make_unique<CpuTrainingOps>();
  t->ops_ = device.ops != nullptr ? device.ops : t->own_ops_.get();
  if (static_cast<int>(t->stages_.size()) != t->pipeline_size()) {
    return Status::InvalidArgument("training: " + std::to_string(t->stages_.size()) + " stage ranges for " +
                                   std::to_string(t->pipeline_size()) + " pipeline ranks");
  }
  if (options.zero_stage != 0 && options.zero_stage != 3) {
    return Status::InvalidArgument("--zero " + std::to_string(options.zero_stage) + ": expected 0 or 3");
  }
  if (options.micro_batches < 1) {
    return Status::InvalidArgument("--micro-batches must be at least 1 (got " + std::to_string(options.micro_batches) +
                                   ")");
  }
  const int max_tag = pipeline != nullptr ? pipeline->max_tag() : 32767;
  if (2 * options.micro_batches + 1 > max_tag) {
    return Status::InvalidArgument("--micro-batches " + std::to_string(options.micro_batches) + " is too many");
  }
  BATON_ASSIGN_OR_RETURN(t->config_, LoadModelConfig(model_dir));
  BATON_ASSIGN_OR_RETURN(Checkpoint checkpoint, Checkpoint::Open(model_dir));
  CpuBackend backend;
  const StageRange range = t->stages_[static_cast<size_t>(t->pipeline_rank())];
  BATON_ASSIGN_OR_RETURN(StageWeights weights, LoadStageWeights(checkpoint, t->config_, range, backend));
  ShardMode mode = ShardMode::kLocal;
  if (t->dp_size() > 1) mode = options.zero_stage == 3 ? ShardMode::kSharded : ShardMode::kReplicated;
  t->stage_ = std::make_unique<TrainingStage>(t->config_, std::move(weights), mode, t->device_dp_,
                                              options.activation_checkpointing, *t->ops_);
  t->adamw_ = std::make_unique<AdamW>(options.adamw);
  return t;
}

StatusOr<std::vector<BatchLayout>> PipelineTrainer::MicroBatches(const TrainBatch& global) const {
  const int dp = dp_size(), m = options_.micro_batches;
  if (global.num_seqs % dp != 0 || (global.num_seqs / dp) % m != 0) {
    return Status::InvalidArgument("training: a batch of " + std::to_string(global.num_seqs) +
                                   " sequences does not split into dp " + std::to_string(dp) + " x " +
                                   std::to_string(m) + " micro-batches (--batch-size must be a multiple of dp x M)");
  }
  const int share = global.num_seqs / dp, per_mb = share / m;
  std::vector<BatchLayout> out;
  for (int k = 0; k < m; ++k) {
    const TrainBatch mb = SliceBatch(global, dp_rank() * share + k * per_mb, per_mb);
    BATON_ASSIGN_OR_RETURN(BatchLayout layout, LayOutBatch(config_, mb));
    out.push_back(baton::ToDevice(ops_->backend(), layout));
  }
  return out;
}

StatusOr<LossSum> PipelineTrainer::RunSchedule(const std::vector<BatchLayout>& mbs, bool train, float grad_scale) {
  const int stage = pipeline_rank(), num_stages = pipeline_size();
  const int m = static_cast<int>(mbs.size());
  const int64_t h = config_.hidden_size;
  std::vector<PipeOp> ops;
  if (train) {
    ops = StageSchedule(options_.schedule, stage, num_stages, m);
  } else {
    for (int k = 0; k < m; ++k) ops.push_back({true, k});
  }
  std::vector<PendingSend> sends;
  LossSum loss;
  for (const PipeOp& op : ops) {
    const BatchLayout& batch = mbs[static_cast<size_t>(op.micro_batch)];
    if (op.forward) {
      Tensor input;
      if (!stage_->is_first()) {
        input = ops_->Activations(batch.rows, h);
        BATON_RETURN_IF_ERROR(device_pipeline_->Recv(input, stage - 1, ForwardTag(op.micro_batch)));
      }
      BATON_ASSIGN_OR_RETURN(Tensor out, stage_->Forward(op.micro_batch, batch, input, train, grad_scale, &loss));
      if (!stage_->is_last()) {
        BATON_ASSIGN_OR_RETURN(Request r,
                               device_pipeline_->ISend(out.raw(), out.nbytes(), stage + 1, ForwardTag(op.micro_batch)));
        sends.push_back({std::move(r), std::move(out), device_pipeline_});
      }
    } else {
      Tensor d_output;
      if (!stage_->is_last()) {
        d_output = ops_->Activations(batch.rows, h);
        BATON_RETURN_IF_ERROR(device_pipeline_grads_->Recv(d_output, stage + 1, BackwardTag(op.micro_batch)));
      }
      BATON_ASSIGN_OR_RETURN(Tensor d_input, stage_->Backward(op.micro_batch, d_output));
      if (!stage_->is_first()) {
        BATON_ASSIGN_OR_RETURN(Request r, device_pipeline_grads_->ISend(d_input.raw(), d_input.nbytes(), stage - 1,
                                                                        BackwardTag(op.micro_batch)));
        sends.push_back({std::move(r), std::move(d_input), device_pipeline_grads_});
      }
    }
  }
  for (PendingSend& s : sends) BATON_RETURN_IF_ERROR(s.comm->Wait(s.request));
  std::vector<double> totals = {loss.sum, static_cast<double>(loss.tokens)};
  BATON_RETURN_IF_ERROR(SumOverJob(totals));
  return LossSum{totals[0], static_cast<int64_t>(std::llround(totals[1]))};
}

Status PipelineTrainer::SumOverJob(std::vector<double>& values) {
  if (pipeline_ != nullptr) BATON_RETURN_IF_ERROR(pipeline_->AllReduce(std::span<double>(values)));
  if (data_parallel_ != nullptr) BATON_RETURN_IF_ERROR(data_parallel_->AllReduce(std::span<double>(values)));
  return Status::Ok();
}

StatusOr<LossSum> PipelineTrainer::ComputeGradients(const TrainBatch& global_batch) {
  BATON_ASSIGN_OR_RETURN(std::vector<BatchLayout> mbs, MicroBatches(global_batch));
  const float grad_scale = 1.0f / static_cast<float>(std::max<int64_t>(CountTargets(global_batch), 1));
  for (auto& unit : stage_->units()) unit->ZeroGrad();
  BATON_ASSIGN_OR_RETURN(LossSum loss, RunSchedule(mbs, true, grad_scale));
  for (auto& unit : stage_->units()) BATON_RETURN_IF_ERROR(unit->SyncGrads());
  BATON_RETURN_IF_ERROR(SumTiedEmbeddingGrads());
  return loss;
}

StatusOr<LossSum> PipelineTrainer::Evaluate(const TrainBatch& global_batch) {
  BATON_ASSIGN_OR_RETURN(std::vector<BatchLayout> mbs, MicroBatches(global_batch));
  return RunSchedule(mbs, false, 0.0f);
}

Status PipelineTrainer::SumTiedEmbeddingGrads() {
  ParamUnit* mine = stage_->is_first() ? stage_->embedding_unit() : stage_->tied_copy_unit();
  if (pipeline_size() == 1 || !config_.tie_word_embeddings || mine == nullptr) return Status::Ok();
  const int peer = stage_->is_first() ? pipeline_size() - 1 : 0;
  const int tag = 2 * options_.micro_batches;  // above every activation tag
  Tensor& grad = mine->grad_shard();
  Tensor theirs = ops_->backend().Allocate(grad.shape(), DType::kF32);
  // The first stage sends first and the last receives first: over NCCL a
  // send waits for its receive, so both sending first would deadlock.
  if (stage_->is_first()) {
    BATON_RETURN_IF_ERROR(device_pipeline_->Send(grad, peer, tag));
    BATON_RETURN_IF_ERROR(device_pipeline_->Recv(theirs, peer, tag));
  } else {
    BATON_RETURN_IF_ERROR(device_pipeline_->Recv(theirs, peer, tag));
    BATON_RETURN_IF_ERROR(device_pipeline_->Send(grad, peer, tag));
  }
  // a + b == b + a in floating point, so both copies get identical sums.
  ops_->backend().AddInPlace(grad, theirs);
  return Status::Ok();
}

std::vector<Tensor> PipelineTrainer::Shards() {
  std::vector<Tensor> out;
  for (auto& unit : stage_->units()) out.push_back(unit->shard());
  return out;
}

std::vector<Tensor> PipelineTrainer::GradShards() {
  std::vector<Tensor> out;
  for (auto& unit : stage_->units()) out.push_back(unit->grad_shard());
  return out;
}

StatusOr<double> PipelineTrainer::ApplyUpdate(double lr, double max_norm) {
  std::vector<Tensor> counted;
  for (auto& unit : stage_->units()) {
    if (unit->counts_in_norm() && unit.get() != stage_->tied_copy_unit()) counted.push_back(unit->grad_shard());
  }
  BATON_ASSIGN_OR_RETURN(const double local_sum_sq, ops_->SumSquares(counted));
  std::vector<double> sum_sq = {local_sum_sq};
  BATON_RETURN_IF_ERROR(SumOverJob(sum_sq));
  const double norm = std::sqrt(sum_sq[0]);
  std::vector<Tensor> grads = GradShards();
  const float coef = ClipCoefficient(norm, max_norm);  // 1: no clipping
  std::vector<Tensor> params = Shards();
  if (options_.offload_optimizer) {
    OffloadedStep(params, grads, lr, coef);
    for (auto& unit : stage_->units()) unit->RefreshCompute();
  } else {
    // The update writes each unit's 16-bit compute copy as it goes.
    std::vector<Tensor*> copies;
    for (auto& unit : stage_->units()) copies.push_back(unit->compute_copy());
    adamw_->Step(*ops_, params, grads, lr, coef, copies);
  }
  BATON_RETURN_IF_ERROR(ops_->Synchronize());
  return norm;
}

void PipelineTrainer::OffloadedStep(std::vector<Tensor>& params, const std::vector<Tensor>& grads, double lr,
                                    float grad_scale) {
  if (!host_ops_) host_ops_ = std::make_unique<CpuTrainingOps>();
  std::vector<Tensor> host_params, host_grads;
  for (size_t i = 0; i < params.size(); ++i) {
    host_params.push_back(ToHost(params[i]));
    host_grads.push_back(ToHost(grads[i]));
  }
  adamw_->Step(*host_ops_, host_params, host_grads, lr, grad_scale);
  if (ops_->backend().device() == Device::kCpu) return;  // the host copies were the shards themselves
  for (size_t i = 0; i < params.size(); ++i) ops_->backend().CopyToDevice(host_params[i], params[i]);
}

Tensor PipelineTrainer::ToHost(const Tensor& t) {
  return t.device() == Device::kCpu ? t : ops_->backend().ToHostF32(t);
}

Tensor PipelineTrainer::ToDevice(const Tensor& host) {
  return ops_->backend().device() == Device::kCpu ? host : ops_->backend().Upload(host, host.dtype());
}

TrainMemory PipelineTrainer::memory() const {
  TrainMemory m;
  for (const auto& unit : stage_->units()) {
    m.stage_parameter_bytes += static_cast<size_t>(unit->numel()) * sizeof(float);
    m.parameter_bytes += unit->shard_bytes();
    m.gradient_bytes += unit->grad_bytes();
  }
  for (const Tensor& t : adamw_->exp_avg()) m.optimizer_bytes += t.nbytes();
  for (const Tensor& t : adamw_->exp_avg_sq()) m.optimizer_bytes += t.nbytes();
  m.optimizer_on_host = options_.offload_optimizer;
  m.peak_gathered_bytes = stage_->peak_gathered_bytes();
  m.peak_activation_bytes = stage_->peak_activation_bytes();
  return m;
}

}  // namespace baton
