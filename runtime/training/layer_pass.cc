#include "runtime/training/layer_pass.h"

#include <cmath>
#include <string>

#include "runtime/model/rope.h"
#include "runtime/model/transformer_layer.h"
#include "runtime/training/activation_grad.h"
#include "runtime/training/causal_attention.h"
#include "runtime/training/linear_grad.h"
#include "runtime/training/lm_head_loss.h"
#include "runtime/training/norm_grad.h"
#include "runtime/training/rope_grad.h"

namespace baton {
namespace {

Tensor F32(int64_t rows, int64_t cols) { return Tensor::Empty({rows, cols}, DType::kF32); }

void Add(Tensor& x, const Tensor& y) {
  float* a = x.data<float>();
  const float* b = y.data<float>();
  for (int64_t i = 0; i < x.numel(); ++i) a[i] += b[i];
}

}  // namespace

int64_t CountTargets(const TrainBatch& b) {
  int64_t n = 0;
  for (int s = 0; s < b.num_seqs; ++s) {
    for (int t = 1; t < b.seq_len; ++t) n += b.labels[static_cast<size_t>(s) * b.seq_len + t] != kIgnoreIndex;
  }
  return n;
}

StatusOr<BatchLayout> LayOutBatch(const ModelConfig& c, const TrainBatch& batch) {
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
  BatchLayout out;
  out.rows = n;
  out.ids = Tensor::Empty({n}, DType::kI32);
  out.positions = Tensor::Empty({n}, DType::kI32);
  out.targets = Tensor::Empty({n}, DType::kI32);
  for (int s = 0; s < batch.num_seqs; ++s) {
    out.starts.push_back(s * batch.seq_len);
    for (int t = 0; t < batch.seq_len; ++t) {
      const int64_t i = int64_t{s} * batch.seq_len + t;
      out.ids.data<int32_t>()[i] = batch.input_ids[i];
      out.positions.data<int32_t>()[i] = t;
      out.targets.data<int32_t>()[i] = t + 1 < batch.seq_len ? batch.labels[i + 1] : kIgnoreIndex;
    }
  }
  out.starts.push_back(static_cast<int>(n));
  return out;
}

LayerConstants::LayerConstants(const ModelConfig& c) : config(c) {
  attention.num_heads = c.num_heads;
  attention.num_kv_heads = c.num_kv_heads;
  attention.head_dim = c.head_dim;
  attention.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  attention.sliding_window = c.sliding_window;
  if (c.positions == PositionKind::kRope) {
    std::vector<float> inv = RopeInverseFrequencies(c.rope, c.head_dim);
    inv_freq = Tensor::Empty({static_cast<int64_t>(inv.size())}, DType::kF32);
    std::copy(inv.begin(), inv.end(), inv_freq.data<float>());
  }
}

size_t LayerActivations::bytes() const {
  size_t total = 0;
  for (const Tensor* t : {&x_in, &normed1, &qkv, &attn, &lse, &h_mid, &normed2, &up, &act}) {
    if (t->defined()) total += t->nbytes();
  }
  return total;
}

void LayerForward(CpuBackend& backend, const LayerConstants& k, const BatchLayout& batch, const LayerWeights& w,
                  const Tensor& x, Tensor& out, LayerActivations* keep) {
  const ModelConfig& c = k.config;
  const int64_t n = batch.rows, h = c.hidden_size, f = c.intermediate_size;
  const int64_t up_w = c.mlp == MlpKind::kSwiGlu ? 2 * f : f;
  LayerActivations local;
  LayerActivations& a = keep != nullptr ? *keep : local;
  a.x_in = x;
  a.normed1 = F32(n, h);
  ApplyNorm(backend, c, a.x_in, w.attn_norm_w, w.attn_norm_b, a.normed1);
  a.qkv = F32(n, c.q_size() + 2 * c.kv_size());
  backend.Linear(a.normed1, w.qkv_w, w.qkv_b, a.qkv);
  if (c.positions == PositionKind::kRope) {
    backend.Rope(a.qkv, batch.positions, k.inv_freq, c.num_heads, c.num_kv_heads, c.head_dim);
  }
  a.attn = F32(n, c.q_size());
  a.lse = F32(n, c.num_heads);
  CausalAttentionForward(a.qkv, batch.starts, k.attention, a.attn, a.lse);
  a.h_mid = F32(n, h);
  backend.Linear(a.attn, w.o_w, w.o_b, a.h_mid);
  backend.AddInPlace(a.h_mid, a.x_in);
  a.normed2 = F32(n, h);
  ApplyNorm(backend, c, a.h_mid, w.mlp_norm_w, w.mlp_norm_b, a.normed2);
  a.up = F32(n, up_w);
  backend.Linear(a.normed2, w.up_w, w.up_b, a.up);
  if (c.mlp == MlpKind::kSwiGlu) {
    a.act = F32(n, f);
    backend.SwiGlu(a.up, a.act);
  } else {
    a.act = a.up.Clone();
    backend.GeluNew(a.act);
  }
  out = F32(n, h);
  backend.Linear(a.act, w.down_w, w.down_b, out);
  backend.AddInPlace(out, a.h_mid);
}

void LayerBackward(const LayerConstants& k, const BatchLayout& batch, const LayerWeights& w, LayerWeights& g,
                   LayerActivations& a, Tensor& d) {
  const ModelConfig& c = k.config;
  const int64_t n = batch.rows, h = c.hidden_size, f = c.intermediate_size;
  const int64_t up_w = c.mlp == MlpKind::kSwiGlu ? 2 * f : f;
  Tensor dact = F32(n, f), dup = F32(n, up_w), dnormed = F32(n, h), dtmp = F32(n, h);
  LinearBackward(a.act, w.down_w, d, &dact, g.down_w, &g.down_b);
  if (c.mlp == MlpKind::kSwiGlu) {
    SwiGluBackward(a.up, dact, dup);
  } else {
    GeluNewBackward(a.up, dact, dup);
  }
  LinearBackward(a.normed2, w.up_w, dup, &dnormed, g.up_w, &g.up_b);
  ModelNormBackward(c, a.h_mid, w.mlp_norm_w, dnormed, dtmp, g.mlp_norm_w, g.mlp_norm_b);
  Add(d, dtmp);  // d is now d(h_mid): residual + MLP branch
  Tensor dattn = F32(n, c.q_size()), dqkv = F32(n, c.q_size() + 2 * c.kv_size());
  LinearBackward(a.attn, w.o_w, d, &dattn, g.o_w, &g.o_b);
  CausalAttentionBackward(a.qkv, a.attn, a.lse, dattn, batch.starts, k.attention, dqkv);
  if (c.positions == PositionKind::kRope) {
    RopeBackward(dqkv, batch.positions, k.inv_freq, c.num_heads, c.num_kv_heads, c.head_dim);
  }
  LinearBackward(a.normed1, w.qkv_w, dqkv, &dnormed, g.qkv_w, &g.qkv_b);
  ModelNormBackward(c, a.x_in, w.attn_norm_w, dnormed, dtmp, g.attn_norm_w, g.attn_norm_b);
  Add(d, dtmp);  // d(layer input): residual + attention branch
  a = LayerActivations();
}

}  // namespace baton
