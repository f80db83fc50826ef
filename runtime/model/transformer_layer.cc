#include "runtime/model/transformer_layer.h"

namespace baton {

void ApplyNorm(Backend& backend, const ModelConfig& config, const Tensor& x, const Tensor& weight, const Tensor& bias,
               Tensor& y) {
  if (config.norm == NormKind::kLayerNorm) {
    backend.LayerNorm(x, weight, bias, config.norm_eps, y);
  } else {
    backend.RmsNorm(x, weight, config.norm_eps, y);
  }
}

void ApplyAddNorm(Backend& backend, const ModelConfig& config, const Tensor& x, Tensor& residual, const Tensor& weight,
                  const Tensor& bias, Tensor& normed) {
  const NormOp op = config.norm == NormKind::kLayerNorm ? NormOp::kLayerNorm : NormOp::kRmsNorm;
  backend.AddNorm(op, x, residual, weight, bias, config.norm_eps, normed);
}

namespace {

// One layer. With `mlp_out_pending`, the previous layer's MLP output is in
// buffers.proj, not yet added to hidden: the add is fused with this layer's
// input norm. This layer's MLP output is left there the same way.
void LayerForward(const LayerContext& ctx, const LayerWeights& w, Tensor& hidden, bool mlp_out_pending,
                  Tensor& cache_k, Tensor& cache_v) {
  Backend& be = ctx.backend;
  const ModelConfig& c = ctx.config;
  const int64_t n = hidden.dim(0);

  // Attention block.
  Tensor normed = ctx.buffers.normed(n);
  Tensor proj = ctx.buffers.proj(n);
  if (mlp_out_pending) {
    ApplyAddNorm(be, c, proj, hidden, w.attn_norm_w, w.attn_norm_b, normed);
  } else {
    ApplyNorm(be, c, hidden, w.attn_norm_w, w.attn_norm_b, normed);
  }
  Tensor qkv = ctx.buffers.qkv(n);
  be.Linear(normed, w.qkv_w, w.qkv_b, qkv);
  if (c.positions == PositionKind::kRope) {
    be.Rope(qkv, ctx.plan.positions, ctx.rope_inv_freq, c.num_heads, c.num_kv_heads, c.head_dim);
  }
  be.StoreKv(qkv, ctx.plan.attention, ctx.attention, cache_k, cache_v);
  Tensor attn = ctx.buffers.attn(n);
  be.PagedAttention(qkv, cache_k, cache_v, ctx.plan.attention, ctx.attention, attn);
  be.Linear(attn, w.o_w, w.o_b, proj);

  // MLP block; its norm is fused with the attention's residual add.
  ApplyAddNorm(be, c, proj, hidden, w.mlp_norm_w, w.mlp_norm_b, normed);
  Tensor up = ctx.buffers.up(n);
  be.Linear(normed, w.up_w, w.up_b, up);
  if (c.mlp == MlpKind::kSwiGlu) {
    Tensor act = ctx.buffers.act(n);
    be.SwiGlu(up, act);
    be.Linear(act, w.down_w, w.down_b, proj);
  } else {
    be.GeluNew(up);
    be.Linear(up, w.down_w, w.down_b, proj);
  }
}

}  // namespace

void TransformerLayersForward(const LayerContext& ctx, const std::vector<LayerWeights>& layers, Tensor& hidden,
                              PagedKvCache& cache) {
  for (size_t l = 0; l < layers.size(); ++l) {
    const int layer = static_cast<int>(l);
    LayerForward(ctx, layers[l], hidden, /*mlp_out_pending=*/l > 0, cache.k(layer), cache.v(layer));
  }
  if (!layers.empty()) ctx.backend.AddInPlace(hidden, ctx.buffers.proj(hidden.dim(0)));
}

}  // namespace baton
