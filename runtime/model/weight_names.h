// Hugging Face tensor names of each architecture (as save_pretrained writes
// them; Checkpoint also accepts them without the "model."/"transformer."
// prefix). Adding an architecture = adding its names here.
#pragma once

#include <string>

#include "runtime/model/model_config.h"

namespace baton {

struct LayerTensorNames {
  std::string attn_norm, attn_norm_bias;
  // GPT-2 stores q|k|v fused in one Conv1D ("fused_qkv"); Llama-family models
  // store them apart.
  std::string fused_qkv, fused_qkv_bias;
  std::string q, k, v, q_bias, k_bias, v_bias;
  std::string o, o_bias;
  std::string mlp_norm, mlp_norm_bias;
  std::string up, up_bias;      // GPT-2 c_fc; Llama up_proj
  std::string gate, gate_bias;  // Llama gate_proj
  std::string down, down_bias;
};

struct ModelTensorNames {
  std::string embed, pos_embed, final_norm, final_norm_bias, lm_head;
};

LayerTensorNames LayerNames(const ModelConfig& config, int layer);
ModelTensorNames ModelNames(const ModelConfig& config);
// GPT-2's Conv1D modules store weights [in, out]; they are transposed at load.
bool StoresWeightsInOut(const ModelConfig& config);

}  // namespace baton
