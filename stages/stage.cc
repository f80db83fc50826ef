#include "stages/stage.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

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

constexpr int kGraphBuckets[] = {1, 2, 4, 8, 16, 32, Stage::kMaxGraphBatch};
constexpr int kMinGraphContext = 256;
constexpr int kMinGraphTableWidth = 16;

int64_t PowerOfTwoAtLeast(int64_t x, int64_t floor) {
  int64_t p = floor;
  while (p < x) p *= 2;
  return p;
}

bool GraphsFromEnvironment() {
  const char* v = std::getenv("BATON_CUDA_GRAPHS");
  return v == nullptr || !(std::strcmp(v, "off") == 0 || std::strcmp(v, "0") == 0);
}

// Offsets in the graph input buffer: each field has room for the largest bucket.
constexpr int64_t kMax = Stage::kMaxGraphBatch;
constexpr int64_t kTokensAt = 0, kPositionsAt = kMax, kQueryStartAt = 2 * kMax, kContextAt = 3 * kMax + 1,
                  kSlotsAt = 4 * kMax + 1, kRowsAt = 5 * kMax + 1, kTablesAt = 6 * kMax + 1;

}  // namespace

Stage::Stage(const ModelConfig& config, StageWeights weights, PagedKvCache cache, Backend& backend)
    : config_(config),
      weights_(std::move(weights)),
      cache_(std::move(cache)),
      backend_(backend),
      buffers_(backend, config_),
      graphs_on_(GraphsFromEnvironment()) {
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
  PackLinearWeights(weights, backend);
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
  TransformerLayersForward(ctx, weights_.layers, hidden, cache_);
}

Tensor Stage::DeviceLogits(const DeviceStepPlan& plan, const Tensor& hidden) {
  const int64_t rows = plan.logit_rows.numel();
  Tensor picked = backend_.Allocate({rows, config_.hidden_size}, backend_.compute_dtype());
  backend_.GatherRows(hidden, plan.logit_rows, picked);
  Tensor normed = backend_.Allocate({rows, config_.hidden_size}, backend_.compute_dtype());
  Tensor logits = backend_.Allocate({rows, config_.vocab_size}, backend_.compute_dtype());
  FinalNormAndHead(picked, normed, logits);
  return logits;
}

Tensor Stage::Logits(const DeviceStepPlan& plan, const Tensor& hidden) {
  return backend_.ToHostF32(DeviceLogits(plan, hidden));
}

StatusOr<Tensor> Stage::Forward(const StepPlan& plan) {
  BATON_ASSIGN_OR_RETURN(Tensor logits, ForwardToDevice(plan));
  return backend_.ToHostF32(logits);
}

StatusOr<Tensor> Stage::ForwardToDevice(const StepPlan& plan, const Tensor* token_ids, Tensor* greedy_ids) {
  if (!is_first() || !is_last()) return Status::FailedPrecondition("Stage::Forward needs the whole model in one stage");
  BATON_RETURN_IF_ERROR(ValidateStepPlan(plan, config_));
  if (token_ids != nullptr && (token_ids->dtype() != DType::kI32 || token_ids->numel() != plan.num_tokens() ||
                               plan.num_tokens() != static_cast<int>(plan.seqs.size()))) {
    return Status::Internal("device token ids " + token_ids->DebugString() + " for a plan of " +
                            std::to_string(plan.num_tokens()) + " tokens over " + std::to_string(plan.seqs.size()) +
                            " sequences");
  }
  if (greedy_ids != nullptr) *greedy_ids = Tensor();
  if (IsGraphDecode(plan)) return GraphDecode(plan, token_ids, greedy_ids);
  DeviceStepPlan device = UploadStepPlan(plan, backend_);
  if (token_ids != nullptr) backend_.CopyToDevice(*token_ids, device.token_ids);
  Tensor hidden = Embed(device);
  RunLayers(device, hidden);
  return DeviceLogits(device, hidden);
}

void Stage::set_decode_graphs(bool on) {
  if (!on) DropDecodeGraphs();
  graphs_on_ = on;
}

bool Stage::IsGraphDecode(const StepPlan& plan) const {
  if (!graphs_on_ || !backend_.SupportsGraphs() || !is_first() || !is_last()) return false;
  if (plan.seqs.empty() || plan.seqs.size() > static_cast<size_t>(kMaxGraphBatch)) return false;
  for (const SequenceStep& s : plan.seqs) {
    if (s.num_new_tokens != 1) return false;
  }
  return true;
}

void Stage::DropDecodeGraphs() {
  if (!graph_ids_.empty()) backend_.DropGraphs();
  graph_ids_.clear();
}

Tensor Stage::GraphDecode(const StepPlan& plan, const Tensor* token_ids, Tensor* greedy_ids) {
  const int n = static_cast<int>(plan.seqs.size());
  int bucket = kMaxGraphBatch;
  for (int b : kGraphBuckets) {
    if (n <= b) {
      bucket = b;
      break;
    }
  }
  size_t blocks = 1;
  int context = 1;
  for (const SequenceStep& s : plan.seqs) {
    blocks = std::max(blocks, s.block_table.size());
    context = std::max(context, s.context_len);
  }
  const int64_t width = PowerOfTwoAtLeast(static_cast<int64_t>(blocks), kMinGraphTableWidth);
  const int context_bucket = static_cast<int>(PowerOfTwoAtLeast(context, kMinGraphContext));
  // Recorded graphs point at graph_inputs_ and the backend's scratch,
  // including where they fetch their inputs from: a new buffer or new
  // scratch makes them all stale.
  if (width > graph_table_width_) {
    DropDecodeGraphs();
    graph_table_width_ = static_cast<int>(width);
    graph_inputs_ = backend_.Allocate({kTablesAt + kMax * width}, DType::kI32);
  }
  // With token ids from the device the step fetches all but its tokens:
  // the last greedy graph step left them in place, or they are copied in.
  static_assert(kTokensAt == 0, "the fetch skips a leading token field");
  Tensor host = backend_.NextStepInputs(kTablesAt + bucket * width, token_ids != nullptr ? kPositionsAt : 0,
                                        /*token_rows=*/bucket);
  if (backend_.scratch_generation() != graph_generation_) {
    DropDecodeGraphs();
    graph_generation_ = backend_.scratch_generation();
  }
  if (graph_buffers_ == nullptr) {
    const DType dtype = backend_.compute_dtype();
    graph_hidden_ = backend_.Allocate({kMax, config_.hidden_size}, dtype);
    graph_picked_ = backend_.Allocate({kMax, config_.hidden_size}, dtype);
    graph_normed_ = backend_.Allocate({kMax, config_.hidden_size}, dtype);
    graph_logits_ = backend_.Allocate({kMax, config_.vocab_size}, dtype);
    graph_buffers_ = std::make_unique<ActivationBuffers>(backend_, config_);
    // Grown to the largest bucket now, so no later step moves them.
    graph_buffers_->normed(kMax);
    graph_buffers_->qkv(kMax);
    graph_buffers_->attn(kMax);
    graph_buffers_->proj(kMax);
    graph_buffers_->up(kMax);
    graph_buffers_->act(kMax);
  }

  // The padded step's inputs: rows past n are dummy sequences of one token
  // at position 0 that read block 0 and write nowhere (slot -1).
  int32_t* in = host.data<int32_t>();
  const int block_size = plan.block_size;
  for (int i = 0; i < bucket; ++i) {
    const bool real = i < n;
    const int ctx = real ? plan.seqs[i].context_len : 1;
    const int pos = ctx - 1;
    in[kTokensAt + i] = real && token_ids == nullptr ? plan.token_ids[i] : 0;
    in[kPositionsAt + i] = pos;
    in[kQueryStartAt + i] = i;
    in[kContextAt + i] = ctx;
    in[kSlotsAt + i] = real ? plan.seqs[i].block_table[pos / block_size] * block_size + pos % block_size : -1;
    in[kRowsAt + i] = i;
    int32_t* table = in + kTablesAt + i * width;
    for (int64_t j = 0; j < width; ++j) {
      if (real) {
        table[j] = j < static_cast<int64_t>(plan.seqs[i].block_table.size()) ? plan.seqs[i].block_table[j] : -1;
      } else {
        table[j] = j == 0 ? 0 : -1;
      }
    }
  }
  in[kQueryStartAt + bucket] = bucket;
  if (token_ids != nullptr) {
    Tensor tokens = graph_inputs_.Rows(kTokensAt, kTokensAt + n);
    if (token_ids->raw() != tokens.raw()) backend_.CopyToDevice(*token_ids, tokens);
  }

  DeviceStepPlan d;
  auto field = [&](int64_t at, int64_t count) { return graph_inputs_.Rows(at, at + count); };
  d.token_ids = field(kTokensAt, bucket);
  d.positions = field(kPositionsAt, bucket);
  d.logit_rows = field(kRowsAt, bucket);
  d.attention.query_start = field(kQueryStartAt, bucket + 1);
  d.attention.context_len = field(kContextAt, bucket);
  d.attention.slot_mapping = field(kSlotsAt, bucket);
  d.attention.block_tables = field(kTablesAt, bucket * width).Reshape({bucket, width});
  d.attention.num_seqs = bucket;
  d.attention.max_query_len = 1;
  d.attention.max_context_len = context_bucket;  // the split plan: same for every step of this graph

  const bool greedy = greedy_ids != nullptr && backend_.AsyncGreedy();
  const GraphKey key{bucket, context_bucket, greedy};
  auto it = graph_ids_.find(key);
  if (it != graph_ids_.end()) {
    backend_.RunGraph(it->second);
    ++graph_replays_;
  } else {
    // Eagerly first: this step's answer, and any scratch the step needs is
    // sized before recording (nothing may be allocated while recording).
    RunPaddedStep(d, bucket, greedy);
    if (backend_.scratch_generation() != graph_generation_) {
      DropDecodeGraphs();
      graph_generation_ = backend_.scratch_generation();
    }
    backend_.BeginGraph();
    RunPaddedStep(d, bucket, greedy);
    graph_ids_[key] = backend_.EndGraph();
  }
  if (greedy) *greedy_ids = graph_inputs_.Rows(kTokensAt, kTokensAt + n);
  return graph_logits_.Rows(0, n);
}

void Stage::RunPaddedStep(const DeviceStepPlan& plan, int bucket, bool greedy) {
  backend_.FetchStepInputs(graph_inputs_);
  Tensor hidden = graph_hidden_.Rows(0, bucket);
  backend_.Embedding(plan.token_ids, weights_.embed, hidden);
  if (config_.positions == PositionKind::kLearned) backend_.AddEmbedding(plan.positions, weights_.pos_embed, hidden);
  LayerContext ctx{backend_, config_, plan, attention_, rope_inv_freq_, *graph_buffers_};
  TransformerLayersForward(ctx, weights_.layers, hidden, cache_);
  Tensor picked = graph_picked_.Rows(0, bucket);
  backend_.GatherRows(hidden, plan.logit_rows, picked);
  Tensor normed = graph_normed_.Rows(0, bucket);
  Tensor logits = graph_logits_.Rows(0, bucket);
  FinalNormAndHead(picked, normed, logits);
  // Last: the ids overwrite the tokens this step read.
  if (greedy) {
    Tensor ids = plan.token_ids;
    backend_.StepGreedyTokens(logits, ids);
  }
}

void Stage::FinalNormAndHead(const Tensor& picked, Tensor& normed, Tensor& logits) {
  const LinearStep step = NormThenLinear(config_, weights_.final_norm_w, weights_.final_norm_b, LinearEpilogue::kStore);
  backend_.FusedLinear(picked, weights_.lm_head, Tensor(), step, normed, logits, logits);
}

}  // namespace baton
