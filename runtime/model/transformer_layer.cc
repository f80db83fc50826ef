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

LinearStep NormThenLinear(const ModelConfig& config, const Tensor& weight, const Tensor& bias,
                          LinearEpilogue epilogue) {
  LinearStep step;
  step.norm = config.norm == NormKind::kLayerNorm ? NormOp::kLayerNorm : NormOp::kRmsNorm;
  step.norm_weight = &weight;
  step.norm_bias = &bias;
  step.norm_eps = config.norm_eps;
  step.epilogue = epilogue;
  return step;
}

namespace {

LinearStep ResidualAdd() {
  LinearStep step;
  step.epilogue = LinearEpilogue::kAccumulate;
  return step;
}

// One layer: each norm rides on the linear layer after it and each
// residual add on the linear layer before it (Backend::FusedLinear), and
// RoPE and the K/V store ride on attention (Backend::RopeAttention): a
// decode step on the GPU runs five kernels a layer.
void LayerForward(const LayerContext& ctx, const LayerWeights& w, Tensor& hidden, Tensor& cache_k, Tensor& cache_v) {
  Backend& be = ctx.backend;
  const ModelConfig& c = ctx.config;
  const int64_t n = hidden.dim(0);
  Tensor normed = ctx.buffers.normed(n);
  Tensor proj = ctx.buffers.proj(n);

  // Attention block.
  Tensor qkv = ctx.buffers.qkv(n);
  be.FusedLinear(hidden, w.qkv_w, w.qkv_b, NormThenLinear(c, w.attn_norm_w, w.attn_norm_b, LinearEpilogue::kStore),
                 normed, qkv, qkv);
  Tensor attn = ctx.buffers.attn(n);
  if (c.positions == PositionKind::kRope) {
    be.RopeAttention(qkv, ctx.plan.positions, ctx.rope_inv_freq, ctx.plan.attention, ctx.attention, cache_k, cache_v,
                     attn);
  } else {
    be.StoreKv(qkv, ctx.plan.attention, ctx.attention, cache_k, cache_v);
    be.PagedAttention(qkv, cache_k, cache_v, ctx.plan.attention, ctx.attention, attn);
  }
  be.FusedLinear(attn, w.o_w, w.o_b, ResidualAdd(), normed, proj, hidden);

  // MLP block.
  Tensor up = ctx.buffers.up(n);
  if (c.mlp == MlpKind::kSwiGlu) {
    Tensor act = ctx.buffers.act(n);
    be.FusedLinear(hidden, w.up_w, w.up_b, NormThenLinear(c, w.mlp_norm_w, w.mlp_norm_b, LinearEpilogue::kSwiGlu),
                   normed, up, act);
    be.FusedLinear(act, w.down_w, w.down_b, ResidualAdd(), normed, proj, hidden);
  } else {
    be.FusedLinear(hidden, w.up_w, w.up_b, NormThenLinear(c, w.mlp_norm_w, w.mlp_norm_b, LinearEpilogue::kStore),
                   normed, up, up);
    be.GeluNew(up);
    be.FusedLinear(up, w.down_w, w.down_b, ResidualAdd(), normed, proj, hidden);
  }
}

}  // namespace

void TransformerLayersForward(const LayerContext& ctx, const std::vector<LayerWeights>& layers, Tensor& hidden,
                              PagedKvCache& cache) {
  for (size_t l = 0; l < layers.size(); ++l) {
    const int layer = static_cast<int>(l);
    LayerForward(ctx, layers[l], hidden, cache.k(layer), cache.v(layer));
  }
}

}  // namespace baton
