#include "runtime/model/model_config.h"

#include <filesystem>
#include <fstream>

namespace baton {
namespace {

using nlohmann::json;

// Field readers that name the file and the field in every error.
class ConfigReader {
 public:
  ConfigReader(const json& j, const std::string& source) : j_(j), source_(source) {}

  bool Has(const char* key) const { return j_.contains(key) && !j_[key].is_null(); }

  Status Error(const std::string& key, const std::string& what) const {
    return Status::InvalidArgument(source_ + ": field '" + key + "' " + what);
  }

  StatusOr<int> PositiveInt(const char* key) const {
    if (!Has(key)) return Error(key, "is missing");
    const json& v = j_[key];
    if (!v.is_number_integer()) return Error(key, "must be an integer (got " + v.dump() + ")");
    int64_t x = v.get<int64_t>();
    if (x <= 0 || x > (int64_t{1} << 30)) return Error(key, "must be positive (got " + v.dump() + ")");
    return static_cast<int>(x);
  }

  StatusOr<int> PositiveIntOr(const char* key, int fallback) const {
    if (!Has(key)) return fallback;
    return PositiveInt(key);
  }

  StatusOr<float> PositiveFloatOr(const char* key, float fallback) const {
    if (!Has(key)) return fallback;
    const json& v = j_[key];
    if (!v.is_number() || v.get<double>() <= 0) return Error(key, "must be a positive number (got " + v.dump() + ")");
    return v.get<float>();
  }

  StatusOr<bool> BoolOr(const char* key, bool fallback) const {
    if (!Has(key)) return fallback;
    if (!j_[key].is_boolean()) return Error(key, "must be true or false (got " + j_[key].dump() + ")");
    return j_[key].get<bool>();
  }

  StatusOr<std::string> StringOr(const char* key, const std::string& fallback) const {
    if (!Has(key)) return fallback;
    if (!j_[key].is_string()) return Error(key, "must be a string (got " + j_[key].dump() + ")");
    return j_[key].get<std::string>();
  }

  const json& operator[](const char* key) const { return j_[key]; }
  const std::string& source() const { return source_; }

 private:
  const json& j_;
  const std::string& source_;
};

StatusOr<std::vector<int>> TokenIdList(const json& v, const std::string& source, const char* key) {
  std::vector<int> ids;
  if (v.is_null()) return ids;
  if (v.is_number_integer()) return std::vector<int>{v.get<int>()};
  if (v.is_array()) {
    for (const json& x : v) {
      if (!x.is_number_integer()) break;
      ids.push_back(x.get<int>());
    }
    if (ids.size() == v.size()) return ids;
  }
  return Status::InvalidArgument(source + ": field '" + key + "' must be a token id or a list of them (got " +
                                 v.dump() + ")");
}

StatusOr<DType> StoredDType(const ConfigReader& r) {
  BATON_ASSIGN_OR_RETURN(std::string name, r.StringOr("dtype", ""));
  if (name.empty()) {
    BATON_ASSIGN_OR_RETURN(name, r.StringOr("torch_dtype", "float32"));
  }
  if (name == "float32") return DType::kF32;
  if (name == "bfloat16") return DType::kBF16;
  if (name == "float16") return DType::kF16;
  return r.Error("dtype", "'" + name + "' is not supported (expected float32, bfloat16 or float16)");
}

Status ParseGpt2(const ConfigReader& r, ModelConfig* c) {
  BATON_ASSIGN_OR_RETURN(c->hidden_size, r.PositiveInt("n_embd"));
  BATON_ASSIGN_OR_RETURN(c->num_layers, r.PositiveInt("n_layer"));
  BATON_ASSIGN_OR_RETURN(c->num_heads, r.PositiveInt("n_head"));
  BATON_ASSIGN_OR_RETURN(c->max_positions, r.PositiveInt("n_positions"));
  BATON_ASSIGN_OR_RETURN(c->intermediate_size, r.PositiveIntOr("n_inner", 4 * c->hidden_size));
  BATON_ASSIGN_OR_RETURN(c->norm_eps, r.PositiveFloatOr("layer_norm_epsilon", 1e-5f));
  BATON_ASSIGN_OR_RETURN(std::string act, r.StringOr("activation_function", "gelu_new"));
  if (act != "gelu_new" && act != "gelu_pytorch_tanh") {
    return Status::Unimplemented(r.source() + ": field 'activation_function' '" + act +
                                 "' is not supported (expected gelu_new)");
  }
  BATON_ASSIGN_OR_RETURN(bool scale_by_layer, r.BoolOr("scale_attn_by_inverse_layer_idx", false));
  if (scale_by_layer)
    return Status::Unimplemented(r.source() + ": field 'scale_attn_by_inverse_layer_idx' true is not supported");
  BATON_ASSIGN_OR_RETURN(bool scale_weights, r.BoolOr("scale_attn_weights", true));
  if (!scale_weights) return Status::Unimplemented(r.source() + ": field 'scale_attn_weights' false is not supported");
  if (c->hidden_size % c->num_heads != 0) {
    return r.Error(
        "n_head", "must divide n_embd (" + std::to_string(c->hidden_size) + " / " + std::to_string(c->num_heads) + ")");
  }
  c->num_kv_heads = c->num_heads;
  c->head_dim = c->hidden_size / c->num_heads;
  c->norm = NormKind::kLayerNorm;
  c->mlp = MlpKind::kGeluNew;
  c->positions = PositionKind::kLearned;
  c->qkv_bias = c->o_bias = c->mlp_bias = true;
  BATON_ASSIGN_OR_RETURN(c->tie_word_embeddings, r.BoolOr("tie_word_embeddings", true));
  return Status::Ok();
}

Status ParseRope(const ConfigReader& r, RopeConfig* rope) {
  // transformers 5 writes rope_parameters {rope_type, rope_theta, ...};
  // older files write rope_theta at the top level and rope_scaling apart.
  const json* params = nullptr;
  std::string where = "rope_scaling";
  if (r.Has("rope_parameters")) {
    params = &r["rope_parameters"];
    where = "rope_parameters";
  } else if (r.Has("rope_scaling")) {
    params = &r["rope_scaling"];
  }
  if (params && !params->is_object()) return r.Error(where.c_str(), "must be an object");
  BATON_ASSIGN_OR_RETURN(rope->theta, r.PositiveFloatOr("rope_theta", 10000.0f));
  if (params && params->contains("rope_theta")) {
    const json& t = (*params)["rope_theta"];
    if (!t.is_number() || t.get<double>() <= 0)
      return r.Error((where + ".rope_theta").c_str(), "must be a positive number");
    rope->theta = t.get<float>();
  }
  if (!params) return Status::Ok();
  std::string type = "default";
  for (const char* key : {"rope_type", "type"}) {  // "type" in older checkpoints
    if (!params->contains(key)) continue;
    if (!(*params)[key].is_string()) return r.Error((where + "." + key).c_str(), "must be a string");
    type = (*params)[key].get<std::string>();
    break;
  }
  if (type == "default") return Status::Ok();
  if (type != "llama3") {
    return Status::Unimplemented(r.source() + ": field '" + where + ".rope_type' '" + type +
                                 "' is not supported (expected default or llama3)");
  }
  auto number = [&](const char* key, float* out) -> Status {
    if (!params->contains(key) || !(*params)[key].is_number()) {
      return r.Error((where + "." + key).c_str(), "is missing (needed by rope_type llama3)");
    }
    *out = (*params)[key].get<float>();
    return Status::Ok();
  };
  BATON_RETURN_IF_ERROR(number("factor", &rope->llama3_factor));
  BATON_RETURN_IF_ERROR(number("low_freq_factor", &rope->llama3_low_freq_factor));
  BATON_RETURN_IF_ERROR(number("high_freq_factor", &rope->llama3_high_freq_factor));
  float original = 0;
  BATON_RETURN_IF_ERROR(number("original_max_position_embeddings", &original));
  rope->llama3_original_max_positions = static_cast<int>(original);
  if (rope->llama3_factor <= 0 || rope->llama3_high_freq_factor <= rope->llama3_low_freq_factor) {
    return r.Error(where.c_str(),
                   "has contradictory llama3 factors (need factor > 0 and high_freq_factor > low_freq_factor)");
  }
  return Status::Ok();
}

Status ParseLlamaFamily(const ConfigReader& r, ModelConfig* c) {
  BATON_ASSIGN_OR_RETURN(c->hidden_size, r.PositiveInt("hidden_size"));
  BATON_ASSIGN_OR_RETURN(c->num_layers, r.PositiveInt("num_hidden_layers"));
  BATON_ASSIGN_OR_RETURN(c->num_heads, r.PositiveInt("num_attention_heads"));
  BATON_ASSIGN_OR_RETURN(c->num_kv_heads, r.PositiveIntOr("num_key_value_heads", c->num_heads));
  BATON_ASSIGN_OR_RETURN(c->intermediate_size, r.PositiveInt("intermediate_size"));
  BATON_ASSIGN_OR_RETURN(c->max_positions, r.PositiveInt("max_position_embeddings"));
  BATON_ASSIGN_OR_RETURN(c->norm_eps, r.PositiveFloatOr("rms_norm_eps", 1e-6f));
  if (!r.Has("head_dim") && c->hidden_size % c->num_heads != 0) {
    return r.Error("num_attention_heads", "must divide hidden_size when head_dim is not given");
  }
  BATON_ASSIGN_OR_RETURN(c->head_dim, r.PositiveIntOr("head_dim", c->hidden_size / c->num_heads));
  if (c->num_heads % c->num_kv_heads != 0) {
    return r.Error("num_key_value_heads", "(" + std::to_string(c->num_kv_heads) +
                                              ") must divide num_attention_heads (" + std::to_string(c->num_heads) +
                                              ")");
  }
  BATON_ASSIGN_OR_RETURN(std::string act, r.StringOr("hidden_act", "silu"));
  if (act != "silu") {
    return Status::Unimplemented(r.source() + ": field 'hidden_act' '" + act + "' is not supported (expected silu)");
  }
  BATON_RETURN_IF_ERROR(ParseRope(r, &c->rope));
  c->norm = NormKind::kRmsNorm;
  c->mlp = MlpKind::kSwiGlu;
  c->positions = PositionKind::kRope;
  if (c->model_type == "qwen2") {
    c->qkv_bias = true;  // Qwen2 always has q/k/v biases and none elsewhere
  } else {
    BATON_ASSIGN_OR_RETURN(bool attention_bias, r.BoolOr("attention_bias", false));
    c->qkv_bias = c->o_bias = attention_bias;
    BATON_ASSIGN_OR_RETURN(c->mlp_bias, r.BoolOr("mlp_bias", false));
  }
  BATON_ASSIGN_OR_RETURN(c->tie_word_embeddings, r.BoolOr("tie_word_embeddings", false));

  bool window_applies = c->model_type == "mistral";
  if (c->model_type == "qwen2") {
    BATON_ASSIGN_OR_RETURN(window_applies, r.BoolOr("use_sliding_window", false));
  }
  if (window_applies && r.Has("sliding_window")) {
    BATON_ASSIGN_OR_RETURN(c->sliding_window, r.PositiveInt("sliding_window"));
    if (c->sliding_window >= c->max_positions) c->sliding_window = 0;  // never limits anything
  }
  return Status::Ok();
}

}  // namespace

StatusOr<ModelConfig> ParseModelConfig(const json& config, const std::string& source) {
  if (!config.is_object()) return Status::InvalidArgument(source + ": must be a JSON object");
  ConfigReader r(config, source);
  ModelConfig c;
  BATON_ASSIGN_OR_RETURN(c.model_type, r.StringOr("model_type", ""));
  if (c.model_type.empty()) return r.Error("model_type", "is missing");
  if (c.model_type == "gpt2") {
    BATON_RETURN_IF_ERROR(ParseGpt2(r, &c));
  } else if (c.model_type == "llama" || c.model_type == "mistral" || c.model_type == "qwen2") {
    BATON_RETURN_IF_ERROR(ParseLlamaFamily(r, &c));
  } else {
    return Status::InvalidArgument(source + ": field 'model_type' '" + c.model_type +
                                   "' is not supported (expected gpt2, llama, mistral or qwen2)");
  }
  BATON_ASSIGN_OR_RETURN(c.vocab_size, r.PositiveInt("vocab_size"));
  BATON_ASSIGN_OR_RETURN(c.stored_dtype, StoredDType(r));
  c.rope.inv_freq_dtype = c.stored_dtype;
  if (r.Has("bos_token_id")) {
    BATON_ASSIGN_OR_RETURN(auto bos, TokenIdList(config["bos_token_id"], source, "bos_token_id"));
    if (!bos.empty()) c.bos_token_id = bos[0];
  }
  if (r.Has("eos_token_id")) {
    BATON_ASSIGN_OR_RETURN(c.eos_token_ids, TokenIdList(config["eos_token_id"], source, "eos_token_id"));
  }
  return c;
}

static StatusOr<json> ReadJsonFile(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) return Status::NotFound(path.string() + ": cannot open");
  json j = json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::DataLoss(path.string() + ": not valid JSON");
  return j;
}

StatusOr<ModelConfig> LoadModelConfig(const std::string& model_dir) {
  std::filesystem::path dir(model_dir);
  if (!std::filesystem::is_directory(dir)) {
    return Status::NotFound("model directory '" + model_dir + "' does not exist");
  }
  BATON_ASSIGN_OR_RETURN(json config, ReadJsonFile(dir / "config.json"));
  BATON_ASSIGN_OR_RETURN(ModelConfig c, ParseModelConfig(config, (dir / "config.json").string()));
  auto gen_path = dir / "generation_config.json";
  if (std::filesystem::exists(gen_path)) {
    BATON_ASSIGN_OR_RETURN(json gen, ReadJsonFile(gen_path));
    if (gen.is_object() && gen.contains("eos_token_id") && !gen["eos_token_id"].is_null()) {
      BATON_ASSIGN_OR_RETURN(c.eos_token_ids, TokenIdList(gen["eos_token_id"], gen_path.string(), "eos_token_id"));
    }
  }
  return c;
}

}  // namespace baton
