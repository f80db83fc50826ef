// TrainingModel: the whole model on one CPU rank, float32, with a forward
// that keeps each layer's activations and a backward that produces a
// gradient for every parameter.
//
// Parameters and gradients live in the serving layout (StageWeights: fused
// q|k|v and gate|up, every linear [out, in]); hf_layout.h maps both back to
// Hugging Face names and shapes. The forward calls the Backend ops the
// serving path uses (the same CpuBackend numerics), plus the training-only
// causal attention; backward uses the CPU ops of this folder.
// One thread at a time.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "runtime/backend/cpu/cpu_backend.h"
#include "runtime/model/model_weights.h"
#include "runtime/training/lm_head_loss.h"

namespace baton {

// num_seqs sequences of seq_len tokens, row-major. Labels are as
// transformers takes them (not shifted; position t+1's label is the target
// of position t); kIgnoreIndex masks a position.
struct TrainBatch {
  int num_seqs = 0;
  int seq_len = 0;
  std::vector<int32_t> input_ids;
  std::vector<int32_t> labels;
};

// How many next-token targets of `batch` count toward the mean loss.
int64_t CountTargets(const TrainBatch& batch);

class TrainingModel {
 public:
  static StatusOr<std::unique_ptr<TrainingModel>> Load(const std::string& model_dir);
  // Takes already-loaded float32 weights of all layers (tests build these).
  TrainingModel(const ModelConfig& config, StageWeights weights);

  // Forward and backward of one micro-batch. Gradients of
  // grad_scale * sum(token losses) are ADDED to the gradient buffers; pass
  // 1 / (targets of the whole optimizer step) to get the mean over it.
  StatusOr<LossSum> ForwardBackward(const TrainBatch& batch, float grad_scale);
  // Loss only (no activations kept, no gradients).
  StatusOr<LossSum> Evaluate(const TrainBatch& batch);

  void ZeroGrad();
  // Each distinct parameter tensor once (tied embeddings once), in a fixed
  // order; Gradients() matches it position for position. Shallow views.
  std::vector<Tensor> Parameters() const;
  std::vector<Tensor> Gradients() const;

  const ModelConfig& config() const { return config_; }
  const StageWeights& weights() const { return weights_; }
  const StageWeights& grads() const { return grads_; }

 private:
  StatusOr<LossSum> Run(const TrainBatch& batch, float grad_scale, bool backward);

  CpuBackend backend_;
  ModelConfig config_;
  StageWeights weights_;
  StageWeights grads_;
  Tensor inv_freq_;
  AttentionShape attention_;
};

// The unique tensors of a StageWeights in TrainingModel's parameter order.
std::vector<Tensor> StageTensors(const StageWeights& w, const ModelConfig& config);

}  // namespace baton
