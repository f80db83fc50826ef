// ModelConfig: everything the transformer code needs to know about an
// architecture, filled from a Hugging Face config.json.
//
// Architectures are data, not classes: GPT-2, Llama, Mistral and Qwen2 differ
// only in the fields below (norm, activation, positions, biases, GQA, tied
// embeddings). Adding an architecture means teaching ParseModelConfig its
// config.json spelling and WeightNames (weight_names.h) its tensor names.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "runtime/core/dtype.h"
#include "runtime/core/status.h"

namespace baton {

enum class NormKind { kLayerNorm, kRmsNorm };
enum class MlpKind {
  kGeluNew,  // GPT-2: fc -> gelu (tanh approximation) -> proj
  kSwiGlu,   // Llama family: down(silu(gate(x)) * up(x))
};
enum class PositionKind { kLearned, kRope };

struct RopeConfig {
  float theta = 10000.0f;
  // rope_scaling of type "llama3" (Llama-3.1/3.2): frequencies below the
  // low-frequency wavelength bound are divided by `factor`, smoothly
  // blended between the two bounds. factor == 0 means no scaling.
  float llama3_factor = 0.0f;
  float llama3_low_freq_factor = 1.0f;
  float llama3_high_freq_factor = 4.0f;
  int llama3_original_max_positions = 8192;
  // Precision of the frequencies themselves: transformers holds them in a
  // buffer that follows the model's dtype, so a bf16 model rotates by
  // bf16-rounded frequencies. Set to the checkpoint's dtype.
  DType inv_freq_dtype = DType::kF32;
};

struct ModelConfig {
  std::string model_type;  // "gpt2", "llama", "mistral", "qwen2"
  int vocab_size = 0;
  int hidden_size = 0;
  int num_layers = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int intermediate_size = 0;
  int max_positions = 0;  // longest context the model supports

  NormKind norm = NormKind::kRmsNorm;
  float norm_eps = 1e-5f;
  MlpKind mlp = MlpKind::kSwiGlu;
  PositionKind positions = PositionKind::kRope;
  RopeConfig rope;

  bool qkv_bias = false;
  bool o_bias = false;
  bool mlp_bias = false;
  bool tie_word_embeddings = false;
  // Mistral: each token attends to at most this many previous tokens
  // (itself included). 0 = unlimited.
  int sliding_window = 0;

  DType stored_dtype = DType::kF32;  // the checkpoint's dtype ("torch_dtype"/"dtype")
  int bos_token_id = -1;
  std::vector<int> eos_token_ids;  // from generation_config.json, else config.json

  int q_size() const { return num_heads * head_dim; }
  int kv_size() const { return num_kv_heads * head_dim; }
};

// Parses a config.json object. `source` names the file in error messages.
// An unknown model_type, or a missing or contradictory field, is an
// InvalidArgument that names the field.
StatusOr<ModelConfig> ParseModelConfig(const nlohmann::json& config, const std::string& source);

// Reads <dir>/config.json and, when present, <dir>/generation_config.json
// (whose eos_token_id wins over config.json's).
StatusOr<ModelConfig> LoadModelConfig(const std::string& model_dir);

}  // namespace baton
