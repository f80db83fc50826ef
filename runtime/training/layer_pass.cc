#include "runtime/training/layer_pass.h"

#include <cmath>
#include <string>

#include "runtime/model/rope.h"
#include "runtime/model/transformer_layer.h"

namespace baton {

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

BatchLayout ToDevice(Backend& backend, const BatchLayout& host) {
  if (backend.device() == Device::kCpu) return host;
  BatchLayout out = host;
  out.ids = backend.Upload(host.ids, DType::kI32);
  out.positions = backend.Upload(host.positions, DType::kI32);
  out.targets = backend.Upload(host.targets, DType::kI32);
  return out;
}

LayerConstants::LayerConstants(const ModelConfig& c, Backend& backend)
    : config(c), norm(c.norm == NormKind::kLayerNorm ? NormOp::kLayerNorm : NormOp::kRmsNorm) {
  attention.num_heads = c.num_heads;
  attention.num_kv_heads = c.num_kv_heads;
  attention.head_dim = c.head_dim;
  attention.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  attention.sliding_window = c.sliding_window;
  if (c.positions == PositionKind::kRope) {
    std::vector<float> inv = RopeInverseFrequencies(c.rope, c.head_dim);
    inv_freq = Tensor::Empty({static_cast<int64_t>(inv.size())}, DType::kF32);
    std::copy(inv.begin(), inv.end(), inv_freq.data<float>());
    if (backend.device() != Device::kCpu) inv_freq = backend.Upload(inv_freq, DType::kF32);
  }
}

size_t LayerActivations::bytes() const {
  size_t total = 0;
  for (const Tensor* t : {&x_in, &normed1, &qkv, &attn, &lse, &h_mid, &normed2, &up, &act}) {
    if (t->defined()) total += t->nbytes();
  }
  return total;
}

void LayerForward(TrainingOps& ops, const LayerConstants& k, const BatchLayout& batch, const LayerWeights& w,
                  const Tensor& x, Tensor& out, LayerActivations* keep) {
  Backend& backend = ops.backend();
  const ModelConfig& c = k.config;
  const int64_t n = batch.rows, h = c.hidden_size, f = c.intermediate_size;
  const int64_t up_w = c.mlp == MlpKind::kSwiGlu ? 2 * f : f;
  LayerActivations local;
  LayerActivations& a = keep != nullptr ? *keep : local;
  a.x_in = x;
  a.normed1 = ops.Activations(n, h);
  ApplyNorm(backend, c, a.x_in, w.attn_norm_w, w.attn_norm_b, a.normed1);
  a.qkv = ops.Activations(n, c.q_size() + 2 * c.kv_size());
  backend.Linear(a.normed1, w.qkv_w, w.qkv_b, a.qkv);
  if (c.positions == PositionKind::kRope) {
    backend.Rope(a.qkv, batch.positions, k.inv_freq, c.num_heads, c.num_kv_heads, c.head_dim);
  }
  a.attn = ops.Activations(n, c.q_size());
  a.lse = backend.Allocate({n, c.num_heads}, DType::kF32);
  ops.CausalAttentionForward(a.qkv, batch.starts, k.attention, a.attn, a.lse);
  a.h_mid = ops.Activations(n, h);
  backend.Linear(a.attn, w.o_w, w.o_b, a.h_mid);
  a.normed2 = ops.Activations(n, h);
  // h_mid += x (the residual), then normed2 = norm(h_mid), in one pass
  ApplyAddNorm(backend, c, a.x_in, a.h_mid, w.mlp_norm_w, w.mlp_norm_b, a.normed2);
  a.up = ops.Activations(n, up_w);
  backend.Linear(a.normed2, w.up_w, w.up_b, a.up);
  if (c.mlp == MlpKind::kSwiGlu) {
    a.act = ops.Activations(n, f);
    backend.SwiGlu(a.up, a.act);
  } else {
    a.act = ops.Activations(n, f);
    ops.Copy(a.up, a.act);
    backend.GeluNew(a.act);
  }
  out = ops.Activations(n, h);
  backend.Linear(a.act, w.down_w, w.down_b, out);
  backend.AddInPlace(out, a.h_mid);
}

void LayerBackward(TrainingOps& ops, const LayerConstants& k, const BatchLayout& batch, const LayerWeights& w,
                   LayerWeights& g, LayerActivations& a, Tensor& d) {
  Backend& backend = ops.backend();
  const ModelConfig& c = k.config;
  const int64_t n = batch.rows, h = c.hidden_size, f = c.intermediate_size;
  const int64_t up_w = c.mlp == MlpKind::kSwiGlu ? 2 * f : f;
  const float eps = c.norm_eps;
  Tensor* mlp_norm_db = k.norm == NormOp::kLayerNorm ? &g.mlp_norm_b : nullptr;
  Tensor* attn_norm_db = k.norm == NormOp::kLayerNorm ? &g.attn_norm_b : nullptr;
  Tensor dact = ops.Activations(n, f), dup = ops.Activations(n, up_w);
  Tensor dnormed = ops.Activations(n, h), dtmp = ops.Activations(n, h);
  ops.LinearBackward(a.act, w.down_w, d, &dact, g.down_w, &g.down_b);
  if (c.mlp == MlpKind::kSwiGlu) {
    ops.SwiGluBackward(a.up, dact, dup);
  } else {
    ops.GeluNewBackward(a.up, dact, dup);
  }
  ops.LinearBackward(a.normed2, w.up_w, dup, &dnormed, g.up_w, &g.up_b);
  ops.NormBackward(k.norm, a.h_mid, w.mlp_norm_w, eps, dnormed, dtmp, g.mlp_norm_w, mlp_norm_db);
  backend.AddInPlace(d, dtmp);  // d is now d(h_mid): residual + MLP branch
  Tensor dattn = ops.Activations(n, c.q_size()), dqkv = ops.Activations(n, c.q_size() + 2 * c.kv_size());
  ops.LinearBackward(a.attn, w.o_w, d, &dattn, g.o_w, &g.o_b);
  ops.CausalAttentionBackward(a.qkv, a.attn, a.lse, dattn, batch.starts, k.attention, dqkv);
  if (c.positions == PositionKind::kRope) {
    ops.RopeBackward(dqkv, batch.positions, k.inv_freq, c.num_heads, c.num_kv_heads, c.head_dim);
  }
  ops.LinearBackward(a.normed1, w.qkv_w, dqkv, &dnormed, g.qkv_w, &g.qkv_b);
  ops.NormBackward(k.norm, a.x_in, w.attn_norm_w, eps, dnormed, dtmp, g.attn_norm_w, attn_norm_db);
  backend.AddInPlace(d, dtmp);  // d(layer input): residual + attention branch
  a = LayerActivations();
}

}  // namespace baton
