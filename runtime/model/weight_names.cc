#include "runtime/model/weight_names.h"

namespace baton {

bool StoresWeightsInOut(const ModelConfig& config) { return config.model_type == "gpt2"; }

LayerTensorNames LayerNames(const ModelConfig& config, int layer) {
  LayerTensorNames n;
  if (config.model_type == "gpt2") {
    const std::string p = "transformer.h." + std::to_string(layer) + ".";
    n.attn_norm = p + "ln_1.weight";
    n.attn_norm_bias = p + "ln_1.bias";
    n.fused_qkv = p + "attn.c_attn.weight";
    n.fused_qkv_bias = p + "attn.c_attn.bias";
    n.o = p + "attn.c_proj.weight";
    n.o_bias = p + "attn.c_proj.bias";
    n.mlp_norm = p + "ln_2.weight";
    n.mlp_norm_bias = p + "ln_2.bias";
    n.up = p + "mlp.c_fc.weight";
    n.up_bias = p + "mlp.c_fc.bias";
    n.down = p + "mlp.c_proj.weight";
    n.down_bias = p + "mlp.c_proj.bias";
    return n;
  }
  const std::string p = "model.layers." + std::to_string(layer) + ".";
  n.attn_norm = p + "input_layernorm.weight";
  n.q = p + "self_attn.q_proj.weight";
  n.k = p + "self_attn.k_proj.weight";
  n.v = p + "self_attn.v_proj.weight";
  n.q_bias = p + "self_attn.q_proj.bias";
  n.k_bias = p + "self_attn.k_proj.bias";
  n.v_bias = p + "self_attn.v_proj.bias";
  n.o = p + "self_attn.o_proj.weight";
  n.o_bias = p + "self_attn.o_proj.bias";
  n.mlp_norm = p + "post_attention_layernorm.weight";
  n.gate = p + "mlp.gate_proj.weight";
  n.gate_bias = p + "mlp.gate_proj.bias";
  n.up = p + "mlp.up_proj.weight";
  n.up_bias = p + "mlp.up_proj.bias";
  n.down = p + "mlp.down_proj.weight";
  n.down_bias = p + "mlp.down_proj.bias";
  return n;
}

ModelTensorNames ModelNames(const ModelConfig& config) {
  if (config.model_type == "gpt2") {
    return {"transformer.wte.weight", "transformer.wpe.weight", "transformer.ln_f.weight", "transformer.ln_f.bias",
            "lm_head.weight"};
  }
  return {"model.embed_tokens.weight", "", "model.norm.weight", "", "lm_head.weight"};
}

}  // namespace baton
