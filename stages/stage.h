// Stage: the part of a model one rank runs, layers [first, last) plus the
// embedding on the first stage and the final norm and LM head on the last,
// with the paged KV cache of its own layers. A single-rank run is one stage
// holding everything.
//
// The pieces (Embed, RunLayers, Logits) are separate so a pipeline can pass
// hidden states between ranks; Forward chains them for a one-stage model.
// On a backend with graphs (CUDA), a whole-model decode step (one new token
// per sequence, at most kMaxGraphBatch sequences) is padded to a batch
// bucket (1, 2, 4, ... 64) and replayed from a graph recorded the first
// time that bucket and context bucket (a power of two >= 256, which fixes
// the attention split plan) came up: its first op fetches all of its
// inputs from the host into one fixed device buffer (Backend::
// FetchStepInputs: nothing is queued between two steps), and activations
// and logits live in buffers of the largest bucket, so the recorded
// addresses stay valid. A greedy step's graph also takes the argmax. Prefill steps,
// larger batches and pipeline stages run eagerly. BATON_CUDA_GRAPHS=off in
// the environment (or set_decode_graphs(false)) turns graphs off.
// Thread-compatible: one thread drives a Stage.
#pragma once

#include <compare>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>

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
  // Last stage: logits [R, vocab] of the plan's logit rows, in the
  // backend's memory and compute dtype (what Backend::SampleTokens takes).
  Tensor DeviceLogits(const DeviceStepPlan& plan, const Tensor& hidden);
  // Last stage: the same as float32 host logits.
  Tensor Logits(const DeviceStepPlan& plan, const Tensor& hidden);
  // The whole model in one stage: plan -> logits [R, vocab], in the
  // backend's memory (ForwardToDevice) or on the host (Forward).
  // The logits of a decode step replayed from a graph alias a buffer the
  // next step overwrites: use them before running another.
  // `token_ids`, when given, are the new tokens in this backend's memory
  // (I32, one a sequence, each sequence decoding one): they replace
  // plan.token_ids, whatever those hold (StepPlan::continues_previous).
  // `greedy_ids`, when given and the step runs as a decode graph, is pointed
  // at the argmax of each logits row, which the graph takes too and lands
  // on the host (Backend::StepGreedyTokens: take them with StartStepTokens;
  // device I32, one a sequence). They lie where the next graph step reads
  // its tokens, so passing them back as its `token_ids` copies nothing; the
  // next step overwrites them. Otherwise it is left undefined and the
  // caller samples.
  StatusOr<Tensor> ForwardToDevice(const StepPlan& plan, const Tensor* token_ids = nullptr,
                                   Tensor* greedy_ids = nullptr);
  StatusOr<Tensor> Forward(const StepPlan& plan);

  static constexpr int kMaxGraphBatch = 64;
  void set_decode_graphs(bool on);
  bool decode_graphs() const { return graphs_on_; }
  // Graphs recorded so far, and decode steps that replayed one.
  int num_decode_graphs() const { return static_cast<int>(graph_ids_.size()); }
  int64_t graph_replays() const { return graph_replays_; }

 private:
  Stage(const ModelConfig& config, StageWeights weights, PagedKvCache cache, Backend& backend);

  bool IsGraphDecode(const StepPlan& plan) const;
  Tensor GraphDecode(const StepPlan& plan, const Tensor* token_ids, Tensor* greedy_ids);
  // The padded step on the graph buffers: embedding to logits [bucket, vocab],
  // and with `greedy`, their argmax into the token inputs.
  void RunPaddedStep(const DeviceStepPlan& plan, int bucket, bool greedy);
  // logits = lm_head(final norm(picked)); normed: the norm's scratch.
  void FinalNormAndHead(const Tensor& picked, Tensor& normed, Tensor& logits);
  void DropDecodeGraphs();

  ModelConfig config_;
  StageWeights weights_;
  PagedKvCache cache_;
  Backend& backend_;
  Tensor rope_inv_freq_;
  AttentionShape attention_;
  ActivationBuffers buffers_;

  // Decode graphs (see the class comment).
  bool graphs_on_ = true;
  struct GraphKey {
    int batch_bucket = 0;
    int context_bucket = 0;
    bool greedy = false;  // takes the argmax (greedy_ids)
    auto operator<=>(const GraphKey&) const = default;
  };
  std::map<GraphKey, int> graph_ids_;  // -> backend graph id
  uint64_t graph_generation_ = 0;      // backend scratch generation the graphs were recorded under
  int graph_table_width_ = 0;          // block-table columns graph_inputs_ has room for
  Tensor graph_inputs_;                // I32: ids, positions, query starts, ... (GraphDecode)
  Tensor graph_hidden_, graph_picked_, graph_normed_, graph_logits_;
  std::unique_ptr<ActivationBuffers> graph_buffers_;
  int64_t graph_replays_ = 0;
};

}  // namespace baton
