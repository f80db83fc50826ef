// One transformer layer's training forward and backward, shared by every
// layout (one rank, pipeline stages, ZeRO-3 shards) and device (through
// TrainingOps): the layer math lives here once, and callers only decide
// where the weights come from and which activations to keep.
#pragma once

#include <vector>

#include "runtime/model/model_config.h"
#include "runtime/model/model_weights.h"
#include "runtime/training/train_batch.h"
#include "runtime/training/training_ops.h"

namespace baton {

// How one micro-batch's rows are laid out: num_seqs sequences of seq_len
// tokens, row-major, positions 0.. within each sequence.
struct BatchLayout {
  int64_t rows = 0;
  Tensor ids;               // [rows] I32
  Tensor positions;         // [rows] I32
  Tensor targets;           // [rows] I32: the id row i must predict (labels shifted), or kIgnoreIndex
  std::vector<int> starts;  // num_seqs + 1 row offsets
};

// Checks the batch against the model (sizes, ids in the vocabulary,
// seq_len within max_positions) and lays it out in host memory.
StatusOr<BatchLayout> LayOutBatch(const ModelConfig& config, const TrainBatch& batch);
// The same layout with its id tensors in `backend`'s memory.
BatchLayout ToDevice(Backend& backend, const BatchLayout& host);

// The model-wide constants a layer pass needs.
struct LayerConstants {
  LayerConstants(const ModelConfig& config, Backend& backend);
  const ModelConfig& config;
  AttentionShape attention;
  NormOp norm;
  Tensor inv_freq;  // RoPE models only, in the backend's memory
};

// What one layer's backward needs from its forward.
struct LayerActivations {
  Tensor x_in, normed1, qkv, attn, lse, h_mid, normed2, up, act;
  size_t bytes() const;
};

// out = layer(x). With `keep`, the activations backward needs are stored
// there (x_in aliases x).
void LayerForward(TrainingOps& ops, const LayerConstants& k, const BatchLayout& batch, const LayerWeights& w,
                  const Tensor& x, Tensor& out, LayerActivations* keep);

// d holds d(loss)/d(layer output) and is overwritten with d(loss)/d(layer
// input); parameter gradients are ADDED to g. `a` is consumed (freed).
void LayerBackward(TrainingOps& ops, const LayerConstants& k, const BatchLayout& batch, const LayerWeights& w,
                   LayerWeights& g, LayerActivations& a, Tensor& d);

}  // namespace baton
