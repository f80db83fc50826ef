#include "runtime/training/hf_layout.h"

#include "runtime/model/weight_names.h"

namespace baton {
namespace {

Tensor Transposed(const Tensor& t) {
  const int64_t rows = t.dim(0), cols = t.dim(1);
  Tensor out = Tensor::Empty({cols, rows}, DType::kF32);
  const float* src = t.data<float>();
  float* dst = out.data<float>();
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) dst[c * rows + r] = src[r * cols + c];
  }
  return out;
}

bool Has(const Tensor& t) { return t.defined() && t.numel() > 0 && t.raw() != nullptr; }

}  // namespace

std::vector<std::pair<std::string, Tensor>> ToHfTensors(const ModelConfig& c, const StageWeights& w) {
  std::vector<std::pair<std::string, Tensor>> out;
  const bool in_out = StoresWeightsInOut(c);
  auto linear = [&](const std::string& name, const Tensor& t) { out.emplace_back(name, in_out ? Transposed(t) : t); };
  auto plain = [&](const std::string& name, const Tensor& t) {
    if (Has(t)) out.emplace_back(name, t);
  };
  const ModelTensorNames m = ModelNames(c);
  plain(m.embed, w.embed);
  if (!m.pos_embed.empty()) plain(m.pos_embed, w.pos_embed);
  const int64_t q = c.q_size(), kv = c.kv_size(), f = c.intermediate_size;
  for (size_t i = 0; i < w.layers.size(); ++i) {
    const LayerWeights& l = w.layers[i];
    const LayerTensorNames n = LayerNames(c, w.range.first_layer + static_cast<int>(i));
    plain(n.attn_norm, l.attn_norm_w);
    plain(n.attn_norm_bias, l.attn_norm_b);
    if (!n.fused_qkv.empty()) {
      linear(n.fused_qkv, l.qkv_w);
      plain(n.fused_qkv_bias, l.qkv_b);
    } else {
      linear(n.q, l.qkv_w.Rows(0, q));
      linear(n.k, l.qkv_w.Rows(q, q + kv));
      linear(n.v, l.qkv_w.Rows(q + kv, q + 2 * kv));
      if (Has(l.qkv_b)) {
        plain(n.q_bias, l.qkv_b.Rows(0, q));
        plain(n.k_bias, l.qkv_b.Rows(q, q + kv));
        plain(n.v_bias, l.qkv_b.Rows(q + kv, q + 2 * kv));
      }
    }
    linear(n.o, l.o_w);
    plain(n.o_bias, l.o_b);
    plain(n.mlp_norm, l.mlp_norm_w);
    plain(n.mlp_norm_bias, l.mlp_norm_b);
    if (c.mlp == MlpKind::kSwiGlu) {
      linear(n.gate, l.up_w.Rows(0, f));
      linear(n.up, l.up_w.Rows(f, 2 * f));
      if (Has(l.up_b)) {
        plain(n.gate_bias, l.up_b.Rows(0, f));
        plain(n.up_bias, l.up_b.Rows(f, 2 * f));
      }
    } else {
      linear(n.up, l.up_w);
      plain(n.up_bias, l.up_b);
    }
    linear(n.down, l.down_w);
    plain(n.down_bias, l.down_b);
  }
  plain(m.final_norm, w.final_norm_w);
  if (!m.final_norm_bias.empty()) plain(m.final_norm_bias, w.final_norm_b);
  if (!c.tie_word_embeddings && Has(w.lm_head)) linear(m.lm_head, w.lm_head);
  return out;
}

}  // namespace baton
