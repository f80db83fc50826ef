// Stage: the part of a model one rank runs, layers [first, last) plus the
// embedding on the first stage and the final norm and LM head on the last,
// with the paged KV cache of its own layers. A single-rank run is one stage
// holding everything.
//
// The pieces (Embed, RunLayers, Logits) are separate so a pipeline can pass
// hidden states between ranks; Forward chains them for a one-stage model.
// Thread-compatible: one thread drives a Stage.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "runtime/kv/paged_kv_cache.h"
#include "runtime/model/activation_buffers.h"
#include "runtime/model/model_weights.h"
#include "runtime/model/step_plan.h"

namespace baton {

struct StageOptions {
  StageRange range;       // last_layer == 0 means "through the last layer"
  int num_kv_blocks = 0;  // KV cache capacity, in blocks
  // With num_kv_blocks == 0: called once the weights are resident, to pick
  // the capacity from the memory they left (a GPU's cache is sized so).
  std::function<StatusOr<int>()> kv_blocks_after_weights;
  int block_size = KvBlockManager::kDefaultBlockSize;
  bool show_progress = false;  // a progress line on stderr while weights load
};

class Stage {
 public:
  // Reads the stage's weights from the model folder's safetensors and
  // allocates its KV cache on the backend.
  static StatusOr<std::unique_ptr<Stage>> Load(const std::string& model_dir, const ModelConfig& config,
                                               const StageOptions& options, Backend& backend);

  const ModelConfig& config() const { return config_; }
  const StageRange& range() const { return weights_.range; }
  bool is_first() const { return weights_.range.has_embedding(); }
  bool is_last() const { return weights_.range.has_head(config_); }
  size_t weight_bytes() const { return weights_.bytes; }
  size_t kv_cache_bytes() const { return cache_.bytes(); }
  int num_kv_blocks() const { return cache_.shape().num_blocks; }
  Backend& backend() { return backend_; }

  // First stage: hidden states [N, hidden] of the plan's tokens.
  Tensor Embed(const DeviceStepPlan& plan);
  // Runs this stage's layers over hidden [N, hidden], in place.
  void RunLayers(const DeviceStepPlan& plan, Tensor& hidden);
  // Last stage: float32 host logits [R, vocab] of the plan's logit rows.
  Tensor Logits(const DeviceStepPlan& plan, const Tensor& hidden);
  // The whole model in one stage: plan -> logits [R, vocab].
  StatusOr<Tensor> Forward(const StepPlan& plan);

 private:
  Stage(const ModelConfig& config, StageWeights weights, PagedKvCache cache, Backend& backend);

  ModelConfig config_;
  StageWeights weights_;
  PagedKvCache cache_;
  Backend& backend_;
  Tensor rope_inv_freq_;
  AttentionShape attention_;
  ActivationBuffers buffers_;
};

}  // namespace baton
