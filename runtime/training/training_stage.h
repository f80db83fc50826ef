// TrainingStage: one pipeline stage's share of training - its
// layers, plus the embedding on the first stage and the final norm, LM head
// and loss on the last - over micro-batches that the pipeline schedule
// interleaves (forward of one while another's activations wait for their
// backward).
//
// Parameters live in ParamUnits (one per layer, ...), held whole or as
// ZeRO-3 shards by `mode`. Before a unit is used its values are gathered,
// the next unit's gather is started (prefetch), and afterwards released;
// its backward gradient is reduce-scattered into this rank's shard.
//
// With activation checkpointing only each layer's input is kept between a
// micro-batch's forward and its backward, which recomputes the layer.
// The last stage computes the loss gradient during the forward (the head's
// backward needs nothing else), so its Backward starts from the gradient of
// the final hidden state. One thread at a time.
#pragma once

#include <map>
#include <memory>
#include <vector>

#include "runtime/training/layer_pass.h"
#include "runtime/training/lm_head_loss.h"
#include "runtime/training/param_unit.h"
#include "runtime/training/stage_units.h"

namespace baton {

class TrainingStage {
 public:
  // `weights`: this stage's loaded parameters (host memory, any float
  // dtype; copied into float32 units on `ops`' device). `dp` moves that
  // device's memory; it may be null when mode is kLocal.
  TrainingStage(const ModelConfig& config, StageWeights weights, ShardMode mode, Communicator* dp,
                bool activation_checkpointing, TrainingOps& ops);

  const StageRange& range() const { return weights_.range; }
  bool is_first() const { return weights_.range.has_embedding(); }
  bool is_last() const { return weights_.range.has_head(config_); }

  // Forward of micro-batch `mb` (`batch` in the device's memory: ToDevice).
  // `input` is the previous stage's output [rows, hidden] (unused on the
  // first stage). Returns this stage's output,
  // or on the last stage an empty tensor, adding the micro-batch's loss to
  // *loss. With `train`, what Backward(mb) needs is kept and the last stage
  // computes the gradient of grad_scale * sum(loss) now.
  StatusOr<Tensor> Forward(int mb, const BatchLayout& batch, const Tensor& input, bool train, float grad_scale,
                           LossSum* loss);
  // Backward of micro-batch `mb` (after its Forward with train).
  // `d_output` is the gradient of this stage's output (unused on the last
  // stage). Returns the gradient of its input; empty on the first stage.
  StatusOr<Tensor> Backward(int mb, const Tensor& d_output);

  std::vector<std::unique_ptr<ParamUnit>>& units() { return units_; }
  const std::vector<std::unique_ptr<ParamUnit>>& units() const { return units_; }
  const std::vector<UnitFields>& unit_fields() const { return fields_; }
  // The unit holding the embedding (first stage) / its tied copy on a
  // last stage, or null.
  ParamUnit* embedding_unit() const { return embed_; }
  ParamUnit* tied_copy_unit() const { return tied_copy_; }

  size_t activation_bytes() const { return activation_bytes_; }
  size_t peak_activation_bytes() const { return peak_activation_bytes_; }
  // The most parameter / gradient bytes materialised at once by gathers.
  size_t peak_gathered_bytes() const { return peak_gathered_bytes_; }

 private:
  struct MicroBatch {
    BatchLayout batch;
    std::vector<LayerActivations> layers;  // per layer: everything, or only x_in when checkpointing
    Tensor d_hidden;                       // last stage: gradient of the final hidden state
    size_t bytes = 0;
  };

  // Gathers units_[i] and starts the gather of the unit used after it.
  Status Use(size_t i, bool forward, bool prefetch = true);
  void Done(size_t i);
  StatusOr<Tensor> HeadForward(MicroBatch& state, const Tensor& hidden, bool train, float grad_scale, LossSum* loss);
  void Track(MicroBatch& state, const Tensor& t);

  TrainingOps& ops_;
  ModelConfig config_;
  StageWeights weights_, grads_;
  LayerConstants constants_;
  bool checkpointing_;
  std::vector<UnitFields> fields_;
  std::vector<std::unique_ptr<ParamUnit>> units_;
  ParamUnit* embed_ = nullptr;
  ParamUnit* tied_copy_ = nullptr;
  size_t pos_unit_ = SIZE_MAX, norm_unit_ = SIZE_MAX, head_unit_ = SIZE_MAX;
  std::vector<size_t> layer_units_;    // by layer within the stage
  std::vector<size_t> forward_order_;  // units in the order a forward uses them
  std::map<int, MicroBatch> live_;
  size_t activation_bytes_ = 0, peak_activation_bytes_ = 0, gathered_bytes_ = 0, peak_gathered_bytes_ = 0;
};

}  // namespace baton
