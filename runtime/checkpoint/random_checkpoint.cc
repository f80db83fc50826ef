#include "runtime/checkpoint/random_checkpoint.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "runtime/checkpoint/safetensors_writer.h"

namespace baton {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

constexpr const char* kSource = "model config";

// Field readers for the few config fields the tensor layout depends on.
class FieldReader {
 public:
  explicit FieldReader(const json& j) : j_(j) {}

  bool Has(const char* key) const { return j_.contains(key) && !j_[key].is_null(); }
  Status Error(const std::string& key, const std::string& what) const {
    return Status::InvalidArgument(std::string(kSource) + ": field '" + key + "' " + what);
  }

  StatusOr<int64_t> PositiveInt(const char* key) const {
    if (!Has(key)) return Error(key, "is missing");
    const json& v = j_[key];
    if (!v.is_number_integer()) return Error(key, "must be an integer (got " + v.dump() + ")");
    // Beyond 2^30 no real model exists and shape products could overflow.
    if (v.get<int64_t>() <= 0 || v.get<int64_t>() > (int64_t{1} << 30)) {
      return Error(key, "must be a positive integer below 2^30 (got " + v.dump() + ")");
    }
    return v.get<int64_t>();
  }
  StatusOr<int64_t> PositiveIntOr(const char* key, int64_t fallback) const {
    return Has(key) ? PositiveInt(key) : fallback;
  }
  StatusOr<bool> BoolOr(const char* key, bool fallback) const {
    if (!Has(key)) return fallback;
    if (!j_[key].is_boolean()) return Error(key, "must be true or false (got " + j_[key].dump() + ")");
    return j_[key].get<bool>();
  }
  StatusOr<double> PositiveNumberOr(const char* key, double fallback) const {
    if (!Has(key)) return fallback;
    const json& v = j_[key];
    if (!v.is_number() || v.get<double>() <= 0) return Error(key, "must be a positive number (got " + v.dump() + ")");
    return v.get<double>();
  }

 private:
  const json& j_;
};

enum class Init { kRandom, kOnes, kZeros };

struct PlannedTensor {
  TensorDecl decl;
  Init init = Init::kRandom;
};

class TensorPlan {
 public:
  void Random(std::string name, Shape shape) { Add(std::move(name), std::move(shape), Init::kRandom); }
  void Ones(std::string name, Shape shape) { Add(std::move(name), std::move(shape), Init::kOnes); }
  void Zeros(std::string name, Shape shape) { Add(std::move(name), std::move(shape), Init::kZeros); }
  std::vector<PlannedTensor> Take() { return std::move(tensors_); }

 private:
  void Add(std::string name, Shape shape, Init init) {
    tensors_.push_back(PlannedTensor{TensorDecl{std::move(name), DType::kF32, std::move(shape)}, init});
  }
  std::vector<PlannedTensor> tensors_;
};

// GPT-2 as transformers saves GPT2LMHeadModel: Conv1D weights are [in, out].
StatusOr<std::vector<PlannedTensor>> PlanGpt2(const FieldReader& r) {
  BATON_ASSIGN_OR_RETURN(int64_t vocab, r.PositiveInt("vocab_size"));
  BATON_ASSIGN_OR_RETURN(int64_t n, r.PositiveInt("n_embd"));
  BATON_ASSIGN_OR_RETURN(int64_t layers, r.PositiveInt("n_layer"));
  BATON_ASSIGN_OR_RETURN(int64_t heads, r.PositiveInt("n_head"));
  BATON_ASSIGN_OR_RETURN(int64_t positions, r.PositiveInt("n_positions"));
  BATON_ASSIGN_OR_RETURN(int64_t inner, r.PositiveIntOr("n_inner", 4 * n));
  BATON_ASSIGN_OR_RETURN(bool tied, r.BoolOr("tie_word_embeddings", true));
  if (n % heads != 0) return r.Error("n_head", "must divide n_embd");

  TensorPlan p;
  p.Random("transformer.wte.weight", {vocab, n});
  p.Random("transformer.wpe.weight", {positions, n});
  for (int64_t i = 0; i < layers; ++i) {
    const std::string h = "transformer.h." + std::to_string(i) + ".";
    p.Ones(h + "ln_1.weight", {n});
    p.Zeros(h + "ln_1.bias", {n});
    p.Random(h + "attn.c_attn.weight", {n, 3 * n});
    p.Random(h + "attn.c_attn.bias", {3 * n});
    p.Random(h + "attn.c_proj.weight", {n, n});
    p.Random(h + "attn.c_proj.bias", {n});
    p.Ones(h + "ln_2.weight", {n});
    p.Zeros(h + "ln_2.bias", {n});
    p.Random(h + "mlp.c_fc.weight", {n, inner});
    p.Random(h + "mlp.c_fc.bias", {inner});
    p.Random(h + "mlp.c_proj.weight", {inner, n});
    p.Random(h + "mlp.c_proj.bias", {n});
  }
  p.Ones("transformer.ln_f.weight", {n});
  p.Zeros("transformer.ln_f.bias", {n});
  if (!tied) p.Random("lm_head.weight", {vocab, n});
  return p.Take();
}

// Llama, Mistral and Qwen2 share one layout; Qwen2 adds q/k/v biases, Llama
// may add attention and MLP biases.
StatusOr<std::vector<PlannedTensor>> PlanLlamaLike(const FieldReader& r, const std::string& model_type) {
  BATON_ASSIGN_OR_RETURN(int64_t vocab, r.PositiveInt("vocab_size"));
  BATON_ASSIGN_OR_RETURN(int64_t hidden, r.PositiveInt("hidden_size"));
  BATON_ASSIGN_OR_RETURN(int64_t layers, r.PositiveInt("num_hidden_layers"));
  BATON_ASSIGN_OR_RETURN(int64_t heads, r.PositiveInt("num_attention_heads"));
  BATON_ASSIGN_OR_RETURN(int64_t kv_heads, r.PositiveIntOr("num_key_value_heads", heads));
  BATON_ASSIGN_OR_RETURN(int64_t ffn, r.PositiveInt("intermediate_size"));
  BATON_ASSIGN_OR_RETURN(bool tied, r.BoolOr("tie_word_embeddings", false));
  if (!r.Has("head_dim") && hidden % heads != 0) {
    return r.Error("num_attention_heads", "must divide hidden_size when head_dim is not given");
  }
  BATON_ASSIGN_OR_RETURN(int64_t head_dim, r.PositiveIntOr("head_dim", hidden / heads));
  if (heads % kv_heads != 0) return r.Error("num_key_value_heads", "must divide num_attention_heads");
  bool qkv_bias = model_type == "qwen2";
  bool o_bias = false;
  bool mlp_bias = false;
  if (model_type == "llama") {
    BATON_ASSIGN_OR_RETURN(bool attention_bias, r.BoolOr("attention_bias", false));
    qkv_bias = o_bias = attention_bias;
    BATON_ASSIGN_OR_RETURN(mlp_bias, r.BoolOr("mlp_bias", false));
  }

  const int64_t q = heads * head_dim;
  const int64_t kv = kv_heads * head_dim;
  TensorPlan p;
  p.Random("model.embed_tokens.weight", {vocab, hidden});
  for (int64_t i = 0; i < layers; ++i) {
    const std::string l = "model.layers." + std::to_string(i) + ".";
    p.Ones(l + "input_layernorm.weight", {hidden});
    p.Random(l + "self_attn.q_proj.weight", {q, hidden});
    if (qkv_bias) p.Random(l + "self_attn.q_proj.bias", {q});
    p.Random(l + "self_attn.k_proj.weight", {kv, hidden});
    if (qkv_bias) p.Random(l + "self_attn.k_proj.bias", {kv});
    p.Random(l + "self_attn.v_proj.weight", {kv, hidden});
    if (qkv_bias) p.Random(l + "self_attn.v_proj.bias", {kv});
    p.Random(l + "self_attn.o_proj.weight", {hidden, q});
    if (o_bias) p.Random(l + "self_attn.o_proj.bias", {hidden});
    p.Ones(l + "post_attention_layernorm.weight", {hidden});
    p.Random(l + "mlp.gate_proj.weight", {ffn, hidden});
    if (mlp_bias) p.Random(l + "mlp.gate_proj.bias", {ffn});
    p.Random(l + "mlp.up_proj.weight", {ffn, hidden});
    if (mlp_bias) p.Random(l + "mlp.up_proj.bias", {ffn});
    p.Random(l + "mlp.down_proj.weight", {hidden, ffn});
    if (mlp_bias) p.Random(l + "mlp.down_proj.bias", {hidden});
  }
  p.Ones("model.norm.weight", {hidden});
  if (!tied) p.Random("lm_head.weight", {vocab, hidden});
  return p.Take();
}

StatusOr<std::vector<PlannedTensor>> PlanTensors(const json& config) {
  if (!config.is_object()) return Status::InvalidArgument(std::string(kSource) + " is not a JSON object");
  FieldReader r(config);
  if (!r.Has("model_type")) return r.Error("model_type", "is missing");
  if (!config["model_type"].is_string()) return r.Error("model_type", "must be a string");
  const std::string model_type = config["model_type"].get<std::string>();
  if (model_type == "gpt2") return PlanGpt2(r);
  if (model_type == "llama" || model_type == "mistral" || model_type == "qwen2") return PlanLlamaLike(r, model_type);
  return Status::Unimplemented(std::string(kSource) + ": field 'model_type' '" + model_type +
                               "' is not supported (expected gpt2, llama, mistral or qwen2)");
}

// A cheap, seekable-by-seed generator: splitmix64 mixes (seed, tensor index)
// into the state of an xorshift64* stream, so every tensor's values depend
// only on the seed and its position, never on chunk boundaries.
class Rng {
 public:
  Rng(uint64_t seed, uint64_t stream) : state_(SplitMix(SplitMix(seed) ^ SplitMix(stream + 1))) {
    if (state_ == 0) state_ = 0x9e3779b97f4a7c15ull;  // xorshift must not start at 0
  }
  uint64_t Next() {
    state_ ^= state_ >> 12;
    state_ ^= state_ << 25;
    state_ ^= state_ >> 27;
    return state_ * 0x2545f4914f6cdd1dull;
  }
  // Sum of four 16-bit uniforms (Irwin-Hall), scaled to mean 0, std 1:
  // bell-shaped, bounded at +-3.46, one 64-bit draw per value.
  float NormalIsh() {
    uint64_t x = Next();
    uint32_t sum = static_cast<uint32_t>((x & 0xffff) + ((x >> 16) & 0xffff) + ((x >> 32) & 0xffff) + (x >> 48));
    constexpr float kMean = 4 * 32767.5f;
    constexpr float kInvStd = 1.0f / 37837.23f;  // sqrt(4 * (65536^2 - 1) / 12)
    return (static_cast<float>(sum) - kMean) * kInvStd;
  }

 private:
  static uint64_t SplitMix(uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  uint64_t state_;
};

// On a terminal the line is redrawn in place; in a log, one line a second.
class Progress {
 public:
  Progress(bool enabled, uint64_t total) : enabled_(enabled), tty_(isatty(fileno(stderr)) != 0), total_(total) {}
  void Update(uint64_t done) {
    if (!enabled_) return;
    auto now = std::chrono::steady_clock::now();
    if (now - last_ < (tty_ ? std::chrono::milliseconds(250) : std::chrono::milliseconds(1000))) return;
    last_ = now;
    Print(done);
    printed_ = true;
  }
  void Done() {
    if (!printed_) return;
    Print(total_);
    if (tty_) std::fputc('\n', stderr);
  }

 private:
  void Print(uint64_t done) const {
    std::fprintf(stderr, "%smake-model: %.1f/%.1f GB%s", tty_ ? "\r" : "", static_cast<double>(done) / 1e9,
                 static_cast<double>(total_) / 1e9, tty_ ? "" : "\n");
  }
  bool enabled_;
  bool tty_;
  uint64_t total_;
  bool printed_ = false;
  // Starts "now": a model written in under the interval prints nothing.
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
};

const char* TorchDTypeName(DType t) {
  switch (t) {
    case DType::kF32:
      return "float32";
    case DType::kF16:
      return "float16";
    case DType::kBF16:
      return "bfloat16";
    default:
      return nullptr;
  }
}

Status WriteJsonFile(const std::string& path, const json& j) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return Status::InvalidArgument(path + ": cannot create: " + std::strerror(errno));
  out << j.dump(2) << "\n";
  out.close();
  if (!out) return Status::Internal(path + ": write failed");
  return Status::Ok();
}

Status StreamTensors(const std::vector<PlannedTensor>& plan, float std_dev, DType dtype, uint64_t seed,
                     SafetensorsWriter* writer, bool progress) {
  constexpr size_t kChunk = size_t{1} << 20;  // elements; 4 MB of float32
  std::vector<float> values(kChunk);
  std::vector<unsigned char> bytes(DTypeBytes(dtype, kChunk));
  Progress bar(progress, writer->file_size());
  uint64_t done = 0;
  for (size_t t = 0; t < plan.size(); ++t) {
    const PlannedTensor& pt = plan[t];
    Rng rng(seed, t);
    size_t remaining = static_cast<size_t>(NumElements(pt.decl.shape));
    while (remaining > 0) {
      size_t n = std::min(remaining, kChunk);
      switch (pt.init) {
        case Init::kRandom:
          for (size_t i = 0; i < n; ++i) values[i] = rng.NormalIsh() * std_dev;
          break;
        case Init::kOnes:
          std::fill_n(values.begin(), n, 1.0f);
          break;
        case Init::kZeros:
          std::fill_n(values.begin(), n, 0.0f);
          break;
      }
      ConvertFromF32(values.data(), n, dtype, bytes.data());
      size_t nbytes = DTypeBytes(dtype, n);
      BATON_RETURN_IF_ERROR(writer->Write(pt.decl.name, bytes.data(), nbytes));
      remaining -= n;
      done += nbytes;
      bar.Update(done);
    }
  }
  bar.Done();
  return Status::Ok();
}

}  // namespace

Status WriteRandomCheckpoint(const RandomCheckpointOptions& options) {
  const char* dtype_name = TorchDTypeName(options.dtype);
  if (dtype_name == nullptr) {
    return Status::InvalidArgument(std::string("make-model: dtype ") + DTypeName(options.dtype) +
                                   " is not a float type (expected F32, F16 or BF16)");
  }
  if (options.out_dir.empty()) return Status::InvalidArgument("make-model: no output folder given");
  BATON_ASSIGN_OR_RETURN(std::vector<PlannedTensor> plan, PlanTensors(options.config));
  FieldReader r(options.config);
  BATON_ASSIGN_OR_RETURN(double std_dev, r.PositiveNumberOr("initializer_range", 0.02));
  for (PlannedTensor& t : plan) t.decl.dtype = options.dtype;

  std::error_code ec;
  fs::create_directories(options.out_dir, ec);
  if (ec) return Status::InvalidArgument(options.out_dir + ": cannot create folder: " + ec.message());

  json config = options.config;
  config["torch_dtype"] = dtype_name;  // transformers v4 spelling
  config["dtype"] = dtype_name;        // v5
  BATON_RETURN_IF_ERROR(WriteJsonFile((fs::path(options.out_dir) / "config.json").string(), config));

  json generation = {{"_from_model_config", true}};
  for (const char* key : {"bos_token_id", "eos_token_id", "pad_token_id"}) {
    if (config.contains(key) && !config[key].is_null()) generation[key] = config[key];
  }
  if (config.contains("transformers_version")) generation["transformers_version"] = config["transformers_version"];
  BATON_RETURN_IF_ERROR(WriteJsonFile((fs::path(options.out_dir) / "generation_config.json").string(), generation));

  std::vector<TensorDecl> decls;
  decls.reserve(plan.size());
  for (const PlannedTensor& t : plan) decls.push_back(t.decl);
  BATON_ASSIGN_OR_RETURN(
      std::unique_ptr<SafetensorsWriter> writer,
      SafetensorsWriter::Create((fs::path(options.out_dir) / "model.safetensors").string(), std::move(decls)));
  BATON_RETURN_IF_ERROR(
      StreamTensors(plan, static_cast<float>(std_dev), options.dtype, options.seed, writer.get(), options.progress));
  return writer->Finish();
}

}  // namespace baton
