#include "runtime/checkpoint/builtin_model_configs.h"

#include <functional>
#include <utility>

namespace baton {
namespace {

using nlohmann::json;

struct LlamaShape {
  std::string model_type = {};    // "llama", "mistral", "qwen2"
  std::string architecture = {};  // "LlamaForCausalLM", ...
  int hidden = 0;
  int layers = 0;
  int heads = 0;
  int kv_heads = 0;
  int ffn = 0;
  int vocab = 0;
  int max_positions = 0;
  bool tied = false;
  double rope_theta = 10000.0;
  double rms_eps = 1e-5;
  int bos = 0;
  int eos = 0;
  bool write_head_dim = true;  // Qwen2's config.json has no head_dim field
};

json LlamaLikeConfig(const LlamaShape& s, json rope_scaling = nullptr) {
  json c = {
      {"architectures", json::array({s.architecture})},
      {"attention_dropout", 0.0},
      {"bos_token_id", s.bos},
      {"eos_token_id", s.eos},
      {"hidden_act", "silu"},
      {"hidden_size", s.hidden},
      {"initializer_range", 0.02},
      {"intermediate_size", s.ffn},
      {"max_position_embeddings", s.max_positions},
      {"model_type", s.model_type},
      {"num_attention_heads", s.heads},
      {"num_hidden_layers", s.layers},
      {"num_key_value_heads", s.kv_heads},
      {"rms_norm_eps", s.rms_eps},
      {"rope_theta", s.rope_theta},
      {"rope_scaling", rope_scaling},
      {"tie_word_embeddings", s.tied},
      {"use_cache", true},
      {"vocab_size", s.vocab},
  };
  if (s.write_head_dim) c["head_dim"] = s.hidden / s.heads;
  // transformers v5 spelling: theta and scaling together.
  json params = {{"rope_theta", s.rope_theta}, {"rope_type", "default"}};
  if (rope_scaling.is_object()) params.update(rope_scaling);
  c["rope_parameters"] = params;
  return c;
}

json LlamaConfig(LlamaShape s, json rope_scaling = nullptr) {
  s.model_type = "llama";
  s.architecture = "LlamaForCausalLM";
  json c = LlamaLikeConfig(s, std::move(rope_scaling));
  c["attention_bias"] = false;
  c["mlp_bias"] = false;
  c["pretraining_tp"] = 1;
  return c;
}

json MistralConfig(LlamaShape s, json sliding_window) {
  s.model_type = "mistral";
  s.architecture = "MistralForCausalLM";
  json c = LlamaLikeConfig(s);
  c["sliding_window"] = std::move(sliding_window);
  return c;
}

json Qwen2Config(LlamaShape s) {
  s.model_type = "qwen2";
  s.architecture = "Qwen2ForCausalLM";
  s.write_head_dim = false;
  json c = LlamaLikeConfig(s);
  c["max_window_layers"] = s.layers;
  c["sliding_window"] = s.max_positions;
  c["use_sliding_window"] = false;
  return c;
}

json Gpt2Config(int n_embd, int layers, int heads, int positions, int vocab, int bos_eos) {
  return {
      {"activation_function", "gelu_new"},
      {"architectures", json::array({"GPT2LMHeadModel"})},
      {"attn_pdrop", 0.1},
      {"bos_token_id", bos_eos},
      {"embd_pdrop", 0.1},
      {"eos_token_id", bos_eos},
      {"initializer_range", 0.02},
      {"layer_norm_epsilon", 1e-5},
      {"model_type", "gpt2"},
      {"n_ctx", positions},
      {"n_embd", n_embd},
      {"n_head", heads},
      {"n_inner", nullptr},
      {"n_layer", layers},
      {"n_positions", positions},
      {"reorder_and_upcast_attn", false},
      {"resid_pdrop", 0.1},
      {"scale_attn_by_inverse_layer_idx", false},
      {"scale_attn_weights", true},
      {"summary_activation", nullptr},
      {"summary_first_dropout", 0.1},
      {"summary_proj_to_labels", true},
      {"summary_type", "cls_index"},
      {"summary_use_proj", true},
      {"tie_word_embeddings", true},
      {"use_cache", true},
      {"vocab_size", vocab},
  };
}

// Tiny shapes share one size so tests of every family cost the same; the
// vocabulary matches the test tokenizers under tests/data.
LlamaShape TinyShape() {
  LlamaShape s;
  s.hidden = 64;
  s.layers = 2;
  s.heads = 4;
  s.kv_heads = 2;
  s.ffn = 128;
  s.vocab = 2048;
  s.max_positions = 256;
  return s;
}

const std::vector<std::pair<std::string, std::function<json()>>>& Registry() {
  static const auto* registry = new std::vector<std::pair<std::string, std::function<json()>>>{
      {"llama-3.2-1b",
       [] {
         LlamaShape s{.hidden = 2048,
                      .layers = 16,
                      .heads = 32,
                      .kv_heads = 8,
                      .ffn = 8192,
                      .vocab = 128256,
                      .max_positions = 131072,
                      .tied = true,
                      .rope_theta = 500000.0,
                      .rms_eps = 1e-5,
                      .bos = 128000,
                      .eos = 128001};
         return LlamaConfig(s, {{"factor", 32.0},
                                {"high_freq_factor", 4.0},
                                {"low_freq_factor", 1.0},
                                {"original_max_position_embeddings", 8192},
                                {"rope_type", "llama3"}});
       }},
      {"llama-3-8b",
       [] {
         LlamaShape s{.hidden = 4096,
                      .layers = 32,
                      .heads = 32,
                      .kv_heads = 8,
                      .ffn = 14336,
                      .vocab = 128256,
                      .max_positions = 8192,
                      .tied = false,
                      .rope_theta = 500000.0,
                      .rms_eps = 1e-5,
                      .bos = 128000,
                      .eos = 128001};
         return LlamaConfig(s);
       }},
      {"gpt2-124m", [] { return Gpt2Config(768, 12, 12, 1024, 50257, 50256); }},
      {"qwen2-0.5b",
       [] {
         LlamaShape s{.hidden = 896,
                      .layers = 24,
                      .heads = 14,
                      .kv_heads = 2,
                      .ffn = 4864,
                      .vocab = 151936,
                      .max_positions = 32768,
                      .tied = true,
                      .rope_theta = 1000000.0,
                      .rms_eps = 1e-6,
                      .bos = 151643,
                      .eos = 151643};
         return Qwen2Config(s);
       }},
      {"mistral-7b",  // v0.2: no sliding window, rope_theta 1e6
       [] {
         LlamaShape s{.hidden = 4096,
                      .layers = 32,
                      .heads = 32,
                      .kv_heads = 8,
                      .ffn = 14336,
                      .vocab = 32000,
                      .max_positions = 32768,
                      .tied = false,
                      .rope_theta = 1000000.0,
                      .rms_eps = 1e-5,
                      .bos = 1,
                      .eos = 2};
         return MistralConfig(s, nullptr);
       }},
      {"llama-tiny",
       [] {
         LlamaShape s = TinyShape();
         s.tied = true;
         s.rope_theta = 500000.0;
         return LlamaConfig(s);
       }},
      {"gpt2-tiny", [] { return Gpt2Config(64, 2, 4, 256, 2048, 0); }},
      {"qwen2-tiny",
       [] {
         LlamaShape s = TinyShape();
         s.tied = true;
         s.rope_theta = 1000000.0;
         s.rms_eps = 1e-6;
         return Qwen2Config(s);
       }},
      {"mistral-tiny",  // untied, and a window shorter than the context so it matters
       [] {
         LlamaShape s = TinyShape();
         s.rope_theta = 1000000.0;
         return MistralConfig(s, 128);
       }},
  };
  return *registry;
}

}  // namespace

std::vector<std::string> BuiltinModelShapeNames() {
  std::vector<std::string> names;
  for (const auto& [name, make] : Registry()) names.push_back(name);
  return names;
}

StatusOr<json> BuiltinModelConfig(std::string_view shape_name) {
  for (const auto& [name, make] : Registry()) {
    if (name == shape_name) return make();
  }
  std::string known;
  for (const auto& [name, make] : Registry()) known += (known.empty() ? "" : ", ") + name;
  return Status::InvalidArgument("unknown model shape '" + std::string(shape_name) + "' (known: " + known + ")");
}

}  // namespace baton
