#include "stages/stage.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>

#include "runtime/model/rope.h"
#include "runtime/model/transformer_layer.h"

namespace baton {
namespace {

// Prints "loading weights: 41% (1.0 / 2.5 GB)" at most every 2% of progress.
LoadProgress MakeProgressLine(bool enabled) {
  if (!enabled) return nullptr;
  auto last = std::make_shared<int>(-1);
  const bool tty = isatty(STDERR_FILENO);
  return [last, tty](size_t done, size_t total) {
    if (total < (size_t{100} << 20)) return;  // small models load in a blink
    const int pct = static_cast<int>(100.0 * static_cast<double>(done) / static_cast<double>(total));
    if (pct < *last + 2 && done != total) return;
    *last = pct;
    std::fprintf(stderr, "%sloading weights: %3d%% (%.2f / %.2f GB)%s", tty ? "\r" : "", pct, done / 1e9, total / 1e9,
                 tty && done != total ? "" : "\n");
    std::fflush(stderr);
  };
}

}  // namespace

Stage::Stage(const ModelConfig& config, StageWeights weights, PagedKvCache cache, Backend& backend)
    : config_(config),
      weights_(std::move(weights)),
      cache_(std::move(cache)),
      backend_(backend),
      buffers_(backend, config_) {
  attention_.num_heads = config_.num_heads;
  attention_.num_kv_heads = config_.num_kv_heads;
  attention_.head_dim = config_.head_dim;
  attention_.block_size = cache_.shape().block_size;
  attention_.scale = 1.0f / std::sqrt(static_cast<float>(config_.head_dim));
  attention_.sliding_window = config_.sliding_window;
  if (config_.positions == PositionKind::kRope) {
    std::vector<float> inv = RopeInverseFrequencies(config_.rope, config_.head_dim);
    Tensor host = Tensor::Empty({static_cast<int64_t>(inv.size())}, DType::kF32);
    std::copy(inv.begin(), inv.end(), host.data<float>());
    rope_inv_freq_ = backend_.Upload(host, DType::kF32);
  }
}

StatusOr<std::unique_ptr<Stage>> Stage::Load(const std::string& model_dir, const ModelConfig& config,
                                             const StageOptions& options, Backend& backend) {
  StageRange range = options.range;
  if (range.last_layer == 0) range.last_layer = config.num_layers;
  const bool sized_later = options.num_kv_blocks == 0 && options.kv_blocks_after_weights;
  if ((options.num_kv_blocks <= 0 && !sized_later) || options.block_size <= 0) {
    return Status::InvalidArgument("KV cache needs a positive number of blocks and block size (got " +
                                   std::to_string(options.num_kv_blocks) + " x " + std::to_string(options.block_size) +
                                   ")");
  }
  BATON_ASSIGN_OR_RETURN(Checkpoint ckpt, Checkpoint::Open(model_dir));
  BATON_ASSIGN_OR_RETURN(StageWeights weights,
                         LoadStageWeights(ckpt, config, range, backend, MakeProgressLine(options.show_progress)));
  KvCacheShape shape;
  shape.num_layers = range.last_layer - range.first_layer;
  shape.num_blocks = options.num_kv_blocks;
  if (sized_later) {
    BATON_ASSIGN_OR_RETURN(shape.num_blocks, options.kv_blocks_after_weights());
  }
  shape.block_size = options.block_size;
  shape.num_kv_heads = config.num_kv_heads;
  shape.head_dim = config.head_dim;
  PagedKvCache cache(backend, shape);
  return std::unique_ptr<Stage>(new Stage(config, std::move(weights), std::move(cache), backend));
}

Tensor Stage::Embed(const DeviceStepPlan& plan) {
  const int64_t n = plan.token_ids.numel();
  Tensor hidden = backend_.Allocate({n, config_.hidden_size}, backend_.compute_dtype());
  backend_.Embedding(plan.token_ids, weights_.embed, hidden);
  if (config_.positions == PositionKind::kLearned) backend_.AddEmbedding(plan.positions, weights_.pos_embed, hidden);
  return hidden;
}

void Stage::RunLayers(const DeviceStepPlan& plan, Tensor& hidden) {
  LayerContext ctx{backend_, config_, plan, attention_, rope_inv_freq_, buffers_};
  for (size_t l = 0; l < weights_.layers.size(); ++l) {
    TransformerLayerForward(ctx, weights_.layers[l], hidden, cache_.k(static_cast<int>(l)),
                            cache_.v(static_cast<int>(l)));
  }
}

Tensor Stage::Logits(const DeviceStepPlan& plan, const Tensor& hidden) {
  const int64_t rows = plan.logit_rows.numel();
  Tensor picked = backend_.Allocate({rows, config_.hidden_size}, backend_.compute_dtype());
  backend_.GatherRows(hidden, plan.logit_rows, picked);
  Tensor normed = backend_.Allocate({rows, config_.hidden_size}, backend_.compute_dtype());
  ApplyNorm(backend_, config_, picked, weights_.final_norm_w, weights_.final_norm_b, normed);
  Tensor logits = backend_.Allocate({rows, config_.vocab_size}, backend_.compute_dtype());
  backend_.Linear(normed, weights_.lm_head, Tensor(), logits);
  return backend_.ToHostF32(logits);
}

StatusOr<Tensor> Stage::Forward(const StepPlan& plan) {
  if (!is_first() || !is_last()) return Status::FailedPrecondition("Stage::Forward needs the whole model in one stage");
  BATON_RETURN_IF_ERROR(ValidateStepPlan(plan, config_));
  DeviceStepPlan device = UploadStepPlan(plan, backend_);
  Tensor hidden = Embed(device);
  RunLayers(device, hidden);
  return Logits(device, hidden);
}

}  // namespace baton
