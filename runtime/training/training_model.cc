#include "runtime/training/training_model.h"

#include <cmath>
#include <cstring>

#include "runtime/checkpoint/checkpoint.h"
#include "runtime/model/rope.h"
#include "runtime/model/transformer_layer.h"
#include "runtime/training/activation_grad.h"
#include "runtime/training/causal_attention.h"
#include "runtime/training/embedding_grad.h"
#include "runtime/training/linear_grad.h"
#include "runtime/training/norm_grad.h"
#include "runtime/training/rope_grad.h"

namespace baton {
namespace {

Tensor ZerosLike(const Tensor& t) {
  if (!t.defined() || t.numel() == 0 || t.raw() == nullptr) return Tensor();
  return Tensor::Zeros(t.shape(), DType::kF32);
}

Tensor F32(int64_t rows, int64_t cols) { return Tensor::Empty({rows, cols}, DType::kF32); }

void Add(Tensor& x, const Tensor& y) {
  float* a = x.data<float>();
  const float* b = y.data<float>();
  for (int64_t i = 0; i < x.numel(); ++i) a[i] += b[i];
}

// What one layer's backward needs from its forward.
struct LayerActivations {
  Tensor x_in, normed1, qkv, attn, lse, h_mid, normed2, up, act;
};

void NormBackward(const ModelConfig& c, const Tensor& x, const Tensor& w, const Tensor& dy, Tensor& dx, Tensor& dw,
                  Tensor& db) {
  if (c.norm == NormKind::kLayerNorm) {
    LayerNormBackward(x, w, c.norm_eps, dy, dx, dw, &db);
  } else {
    RmsNormBackward(x, w, c.norm_eps, dy, dx, dw);
  }
}

}  // namespace

int64_t CountTargets(const TrainBatch& b) {
  int64_t n = 0;
  for (int s = 0; s < b.num_seqs; ++s) {
    for (int t = 1; t < b.seq_len; ++t) n += b.labels[static_cast<size_t>(s) * b.seq_len + t] != kIgnoreIndex;
  }
  return n;
}

std::vector<Tensor> StageTensors(const StageWeights& w, const ModelConfig& c) {
  std::vector<Tensor> out;
  auto add = [&](const Tensor& t) {
    if (t.defined() && t.numel() > 0 && t.raw() != nullptr) out.push_back(t);
  };
  add(w.embed);
  add(w.pos_embed);
  for (const LayerWeights& l : w.layers) {
    for (const Tensor* t : {&l.attn_norm_w, &l.attn_norm_b, &l.qkv_w, &l.qkv_b, &l.o_w, &l.o_b, &l.mlp_norm_w,
                            &l.mlp_norm_b, &l.up_w, &l.up_b, &l.down_w, &l.down_b}) {
      add(*t);
    }
  }
  add(w.final_norm_w);
  add(w.final_norm_b);
  if (!c.tie_word_embeddings) add(w.lm_head);
  return out;
}

StatusOr<std::unique_ptr<TrainingModel>> TrainingModel::Load(const std::string& model_dir) {
  BATON_ASSIGN_OR_RETURN(ModelConfig config, LoadModelConfig(model_dir));
  BATON_ASSIGN_OR_RETURN(Checkpoint ckpt, Checkpoint::Open(model_dir));
  CpuBackend backend;
  BATON_ASSIGN_OR_RETURN(StageWeights w, LoadStageWeights(ckpt, config, {0, config.num_layers}, backend));
  return std::make_unique<TrainingModel>(config, std::move(w));
}

TrainingModel::TrainingModel(const ModelConfig& config, StageWeights weights)
    : config_(config), weights_(std::move(weights)) {
  const auto& w = weights_;
  grads_.range = w.range;
  grads_.embed = ZerosLike(w.embed);
  grads_.pos_embed = ZerosLike(w.pos_embed);
  grads_.final_norm_w = ZerosLike(w.final_norm_w);
  grads_.final_norm_b = ZerosLike(w.final_norm_b);
  grads_.lm_head = config_.tie_word_embeddings ? grads_.embed : ZerosLike(w.lm_head);
  for (const LayerWeights& l : w.layers) {
    LayerWeights g;
    g.attn_norm_w = ZerosLike(l.attn_norm_w);
    g.attn_norm_b = ZerosLike(l.attn_norm_b);
    g.qkv_w = ZerosLike(l.qkv_w);
    g.qkv_b = ZerosLike(l.qkv_b);
    g.o_w = ZerosLike(l.o_w);
    g.o_b = ZerosLike(l.o_b);
    g.mlp_norm_w = ZerosLike(l.mlp_norm_w);
    g.mlp_norm_b = ZerosLike(l.mlp_norm_b);
    g.up_w = ZerosLike(l.up_w);
    g.up_b = ZerosLike(l.up_b);
    g.down_w = ZerosLike(l.down_w);
    g.down_b = ZerosLike(l.down_b);
    grads_.layers.push_back(g);
  }
  attention_.num_heads = config_.num_heads;
  attention_.num_kv_heads = config_.num_kv_heads;
  attention_.head_dim = config_.head_dim;
  attention_.scale = 1.0f / std::sqrt(static_cast<float>(config_.head_dim));
  attention_.sliding_window = config_.sliding_window;
  if (config_.positions == PositionKind::kRope) {
    std::vector<float> inv = RopeInverseFrequencies(config_.rope, config_.head_dim);
    inv_freq_ = Tensor::Empty({static_cast<int64_t>(inv.size())}, DType::kF32);
    std::copy(inv.begin(), inv.end(), inv_freq_.data<float>());
  }
}

void TrainingModel::ZeroGrad() {
  for (Tensor& g : Gradients()) std::memset(g.raw(), 0, g.nbytes());
}

std::vector<Tensor> TrainingModel::Parameters() const { return StageTensors(weights_, config_); }
std::vector<Tensor> TrainingModel::Gradients() const { return StageTensors(grads_, config_); }

StatusOr<LossSum> TrainingModel::ForwardBackward(const TrainBatch& batch, float grad_scale) {
  return Run(batch, grad_scale, true);
}
StatusOr<LossSum> TrainingModel::Evaluate(const TrainBatch& batch) { return Run(batch, 0.0f, false); }

StatusOr<LossSum> TrainingModel::Run(const TrainBatch& batch, float grad_scale, bool backward) {
  const ModelConfig& c = config_;
  const int64_t n = int64_t{batch.num_seqs} * batch.seq_len;
  if (batch.num_seqs <= 0 || batch.seq_len <= 0 || static_cast<int64_t>(batch.input_ids.size()) != n ||
      static_cast<int64_t>(batch.labels.size()) != n) {
    return Status::InvalidArgument(
        "training batch: input_ids and labels must both hold num_seqs * seq_len = " + std::to_string(n) + " ids");
  }
  if (batch.seq_len > c.max_positions) {
    return Status::InvalidArgument("training batch: seq_len " + std::to_string(batch.seq_len) +
                                   " exceeds the model's max_positions " + std::to_string(c.max_positions));
  }
  for (int32_t id : batch.input_ids) {
    if (id < 0 || id >= c.vocab_size) {
      return Status::InvalidArgument("training batch: token id " + std::to_string(id) +
                                     " is outside the vocabulary [0, " + std::to_string(c.vocab_size) + ")");
    }
  }
  const int64_t h = c.hidden_size, q = c.q_size(), qkv_w = q + 2 * c.kv_size(), f = c.intermediate_size;
  const int64_t up_w = c.mlp == MlpKind::kSwiGlu ? 2 * f : f;
  Tensor ids = Tensor::Empty({n}, DType::kI32), positions = Tensor::Empty({n}, DType::kI32);
  Tensor targets = Tensor::Empty({n}, DType::kI32);
  std::vector<int> starts;
  for (int s = 0; s < batch.num_seqs; ++s) {
    starts.push_back(s * batch.seq_len);
    for (int t = 0; t < batch.seq_len; ++t) {
      const int64_t i = int64_t{s} * batch.seq_len + t;
      ids.data<int32_t>()[i] = batch.input_ids[i];
      positions.data<int32_t>()[i] = t;
      targets.data<int32_t>()[i] = t + 1 < batch.seq_len ? batch.labels[i + 1] : kIgnoreIndex;
    }
  }
  starts.push_back(static_cast<int>(n));

  // Forward, keeping every layer's activations when backward follows.
  Tensor hidden = F32(n, h);
  backend_.Embedding(ids, weights_.embed, hidden);
  if (c.positions == PositionKind::kLearned) backend_.AddEmbedding(positions, weights_.pos_embed, hidden);
  std::vector<LayerActivations> acts(weights_.layers.size());
  for (size_t l = 0; l < weights_.layers.size(); ++l) {
    const LayerWeights& w = weights_.layers[l];
    LayerActivations& a = acts[l];
    a.x_in = hidden;
    a.normed1 = F32(n, h);
    ApplyNorm(backend_, c, a.x_in, w.attn_norm_w, w.attn_norm_b, a.normed1);
    a.qkv = F32(n, qkv_w);
    backend_.Linear(a.normed1, w.qkv_w, w.qkv_b, a.qkv);
    if (c.positions == PositionKind::kRope) {
      backend_.Rope(a.qkv, positions, inv_freq_, c.num_heads, c.num_kv_heads, c.head_dim);
    }
    a.attn = F32(n, q);
    a.lse = F32(n, c.num_heads);
    CausalAttentionForward(a.qkv, starts, attention_, a.attn, a.lse);
    a.h_mid = F32(n, h);
    backend_.Linear(a.attn, w.o_w, w.o_b, a.h_mid);
    backend_.AddInPlace(a.h_mid, a.x_in);
    a.normed2 = F32(n, h);
    ApplyNorm(backend_, c, a.h_mid, w.mlp_norm_w, w.mlp_norm_b, a.normed2);
    a.up = F32(n, up_w);
    backend_.Linear(a.normed2, w.up_w, w.up_b, a.up);
    if (c.mlp == MlpKind::kSwiGlu) {
      a.act = F32(n, f);
      backend_.SwiGlu(a.up, a.act);
    } else {
      a.act = a.up.Clone();
      backend_.GeluNew(a.act);
    }
    hidden = F32(n, h);
    backend_.Linear(a.act, w.down_w, w.down_b, hidden);
    backend_.AddInPlace(hidden, a.h_mid);
    if (!backward) acts[l] = LayerActivations();  // evaluation keeps nothing
  }
  Tensor normed_final = F32(n, h);
  ApplyNorm(backend_, c, hidden, weights_.final_norm_w, weights_.final_norm_b, normed_final);
  if (!backward) return LmHeadCrossEntropy(normed_final, weights_.lm_head, targets, 0.0f, nullptr, nullptr);

  Tensor dnormed = F32(n, h);
  const LossSum loss =
      LmHeadCrossEntropy(normed_final, weights_.lm_head, targets, grad_scale, &dnormed, &grads_.lm_head);

  // Backward. dh is the gradient of the current layer's output, then input.
  Tensor dh = F32(n, h), dtmp = F32(n, h);
  NormBackward(c, hidden, weights_.final_norm_w, dnormed, dh, grads_.final_norm_w, grads_.final_norm_b);
  Tensor dact = F32(n, f), dup = F32(n, up_w), dattn = F32(n, q), dqkv = F32(n, qkv_w);
  for (size_t l = weights_.layers.size(); l-- > 0;) {
    const LayerWeights& w = weights_.layers[l];
    LayerWeights& g = grads_.layers[l];
    LayerActivations& a = acts[l];
    LinearBackward(a.act, w.down_w, dh, &dact, g.down_w, &g.down_b);
    if (c.mlp == MlpKind::kSwiGlu) {
      SwiGluBackward(a.up, dact, dup);
    } else {
      GeluNewBackward(a.up, dact, dup);
    }
    LinearBackward(a.normed2, w.up_w, dup, &dnormed, g.up_w, &g.up_b);
    NormBackward(c, a.h_mid, w.mlp_norm_w, dnormed, dtmp, g.mlp_norm_w, g.mlp_norm_b);
    Add(dh, dtmp);  // dh is now d(h_mid): residual + MLP branch
    LinearBackward(a.attn, w.o_w, dh, &dattn, g.o_w, &g.o_b);
    CausalAttentionBackward(a.qkv, a.attn, a.lse, dattn, starts, attention_, dqkv);
    if (c.positions == PositionKind::kRope) {
      RopeBackward(dqkv, positions, inv_freq_, c.num_heads, c.num_kv_heads, c.head_dim);
    }
    LinearBackward(a.normed1, w.qkv_w, dqkv, &dnormed, g.qkv_w, &g.qkv_b);
    NormBackward(c, a.x_in, w.attn_norm_w, dnormed, dtmp, g.attn_norm_w, g.attn_norm_b);
    Add(dh, dtmp);           // d(layer input): residual + attention branch
    a = LayerActivations();  // free as soon as it is used
  }
  EmbeddingBackward(ids, dh, grads_.embed);
  if (c.positions == PositionKind::kLearned) EmbeddingBackward(positions, dh, grads_.pos_embed);
  return loss;
}

}  // namespace baton
