#include "runtime/checkpoint/random_checkpoint.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>

#include "runtime/checkpoint/checkpoint.h"
#include "tests/test_data.h"
#include "tests/unit/checkpoint/raw_bytes.h"

namespace baton {
namespace {

using nlohmann::json;

// The tensors transformers' save_pretrained writes for the tiny shapes
// (hidden 64, 2 layers, 4 heads of 16, ffn 128, vocab 2048, 256 positions),
// spelled out here rather than derived from the code under test.
std::map<std::string, Shape> ExpectedTiny(const std::string& family) {
  std::map<std::string, Shape> m;
  if (family == "gpt2") {
    m["transformer.wte.weight"] = {2048, 64};
    m["transformer.wpe.weight"] = {256, 64};
    for (int i = 0; i < 2; ++i) {
      std::string h = "transformer.h." + std::to_string(i) + ".";
      m[h + "ln_1.weight"] = {64};
      m[h + "ln_1.bias"] = {64};
      m[h + "attn.c_attn.weight"] = {64, 192};  // Conv1D: [in, out]
      m[h + "attn.c_attn.bias"] = {192};
      m[h + "attn.c_proj.weight"] = {64, 64};
      m[h + "attn.c_proj.bias"] = {64};
      m[h + "ln_2.weight"] = {64};
      m[h + "ln_2.bias"] = {64};
      m[h + "mlp.c_fc.weight"] = {64, 256};  // n_inner = 4 * n_embd
      m[h + "mlp.c_fc.bias"] = {256};
      m[h + "mlp.c_proj.weight"] = {256, 64};
      m[h + "mlp.c_proj.bias"] = {64};
    }
    m["transformer.ln_f.weight"] = {64};
    m["transformer.ln_f.bias"] = {64};
    return m;
  }
  m["model.embed_tokens.weight"] = {2048, 64};
  for (int i = 0; i < 2; ++i) {
    std::string l = "model.layers." + std::to_string(i) + ".";
    m[l + "input_layernorm.weight"] = {64};
    m[l + "self_attn.q_proj.weight"] = {64, 64};
    m[l + "self_attn.k_proj.weight"] = {32, 64};  // 2 kv heads of 16
    m[l + "self_attn.v_proj.weight"] = {32, 64};
    m[l + "self_attn.o_proj.weight"] = {64, 64};
    m[l + "post_attention_layernorm.weight"] = {64};
    m[l + "mlp.gate_proj.weight"] = {128, 64};
    m[l + "mlp.up_proj.weight"] = {128, 64};
    m[l + "mlp.down_proj.weight"] = {64, 128};
    if (family == "qwen2") {
      m[l + "self_attn.q_proj.bias"] = {64};
      m[l + "self_attn.k_proj.bias"] = {32};
      m[l + "self_attn.v_proj.bias"] = {32};
    }
  }
  m["model.norm.weight"] = {64};
  if (family == "mistral") m["lm_head.weight"] = {2048, 64};  // the only untied tiny shape
  return m;
}

std::string MakeTiny(const std::string& shape, DType dtype, uint64_t seed) {
  auto config = BuiltinModelConfig(shape);
  EXPECT_TRUE(config.ok()) << config.status().ToString();
  RandomCheckpointOptions o;
  o.config = *config;
  o.dtype = dtype;
  o.seed = seed;
  o.out_dir = baton::testing::MakeTempDir("random-" + shape) + "/model";  // created by the writer
  o.progress = false;
  Status s = WriteRandomCheckpoint(o);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return o.out_dir;
}

class TinyShapes : public ::testing::TestWithParam<std::string> {
 protected:
  std::string Family() const { return GetParam().substr(0, GetParam().find('-')); }
};

TEST_P(TinyShapes, EveryExpectedTensorWithItsShapeAndDtype) {
  for (DType dtype : {DType::kBF16, DType::kF32, DType::kF16}) {
    std::string dir = MakeTiny(GetParam(), dtype, 1);
    auto c = Checkpoint::Open(dir);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    std::map<std::string, Shape> want = ExpectedTiny(Family());
    std::vector<std::string> want_names;
    for (const auto& [name, shape] : want) want_names.push_back(name);
    EXPECT_EQ(c->TensorNames(), want_names);
    for (const auto& [name, shape] : want) {
      const TensorInfo* t = c->Find(name);
      ASSERT_NE(t, nullptr) << name;
      EXPECT_EQ(t->shape, shape) << name;
      EXPECT_EQ(t->dtype, dtype) << name;
    }
  }
}

TEST_P(TinyShapes, ConfigFilesDescribeTheWeights) {
  std::string dir = MakeTiny(GetParam(), DType::kBF16, 1);
  json config = json::parse(baton::testing::ReadBytes(dir + "/config.json"));
  EXPECT_EQ(config["model_type"], Family());
  EXPECT_EQ(config["torch_dtype"], "bfloat16");
  EXPECT_EQ(config["dtype"], "bfloat16");
  EXPECT_EQ(config["vocab_size"], 2048);
  json generation = json::parse(baton::testing::ReadBytes(dir + "/generation_config.json"));
  EXPECT_EQ(generation["bos_token_id"], config["bos_token_id"]);
  EXPECT_EQ(generation["eos_token_id"], config["eos_token_id"]);
  EXPECT_TRUE(config["architectures"].is_array());
}

TEST_P(TinyShapes, DeterministicForASeedAndDifferentForAnother) {
  std::string a = baton::testing::ReadBytes(MakeTiny(GetParam(), DType::kBF16, 42) + "/model.safetensors");
  std::string b = baton::testing::ReadBytes(MakeTiny(GetParam(), DType::kBF16, 42) + "/model.safetensors");
  std::string c = baton::testing::ReadBytes(MakeTiny(GetParam(), DType::kBF16, 43) + "/model.safetensors");
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_EQ(a.size(), c.size());
}

TEST_P(TinyShapes, ValuesLookLikeAnInitializedModel) {
  std::string dir = MakeTiny(GetParam(), DType::kF32, 5);
  auto c = Checkpoint::Open(dir);
  ASSERT_TRUE(c.ok());
  const bool gpt2 = Family() == "gpt2";
  const std::string matrix = gpt2 ? "transformer.h.1.mlp.c_fc.weight" : "model.layers.1.mlp.up_proj.weight";
  const std::string norm = gpt2 ? "transformer.h.0.ln_1.weight" : "model.layers.0.input_layernorm.weight";

  auto m = c->Get(matrix);
  ASSERT_TRUE(m.ok());
  double sum = 0, sq = 0;
  for (int64_t i = 0; i < m->numel(); ++i) {
    double v = m->data<float>()[i];
    sum += v;
    sq += v * v;
  }
  double mean = sum / m->numel(), std_dev = std::sqrt(sq / m->numel() - mean * mean);
  EXPECT_NEAR(mean, 0.0, 0.002);
  EXPECT_NEAR(std_dev, 0.02, 0.002);  // initializer_range

  auto n = c->Get(norm);
  ASSERT_TRUE(n.ok());
  for (int64_t i = 0; i < n->numel(); ++i) ASSERT_EQ(n->data<float>()[i], 1.0f);
  if (gpt2) {
    auto bias = c->Get("transformer.ln_f.bias");
    for (int64_t i = 0; i < bias->numel(); ++i) ASSERT_EQ(bias->data<float>()[i], 0.0f);
  }
  // Two tensors of one shape must not repeat each other's values.
  const std::string a = gpt2 ? "transformer.h.0.attn.c_proj.weight" : "model.layers.0.self_attn.q_proj.weight";
  const std::string b = gpt2 ? "transformer.h.1.attn.c_proj.weight" : "model.layers.0.self_attn.o_proj.weight";
  EXPECT_NE(std::memcmp(c->Get(a)->raw(), c->Get(b)->raw(), c->Get(a)->nbytes()), 0);
}

INSTANTIATE_TEST_SUITE_P(All, TinyShapes, ::testing::Values("llama-tiny", "gpt2-tiny", "qwen2-tiny", "mistral-tiny"),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& ch : s) ch = ch == '-' ? '_' : ch;
                           return s;
                         });

TEST(RandomCheckpoint, Bf16ValuesAreTheF32ValuesRounded) {
  auto f32 = Checkpoint::Open(MakeTiny("llama-tiny", DType::kF32, 9));
  auto bf16 = Checkpoint::Open(MakeTiny("llama-tiny", DType::kBF16, 9));
  ASSERT_TRUE(f32.ok() && bf16.ok());
  Tensor a = *f32->Get("model.layers.0.mlp.down_proj.weight");
  Tensor b = *bf16->Get("model.layers.0.mlp.down_proj.weight");
  for (int64_t i = 0; i < a.numel(); ++i) {
    ASSERT_EQ(b.data<uint16_t>()[i], FloatToBf16(a.data<float>()[i])) << i;
  }
}

TEST(RandomCheckpoint, BuiltinShapesHaveTheirRealSizes) {
  std::vector<std::string> names = BuiltinModelShapeNames();
  for (const char* want : {"llama-3.2-1b", "llama-3-8b", "gpt2-124m", "qwen2-0.5b", "mistral-7b", "llama-tiny",
                           "gpt2-tiny", "qwen2-tiny", "mistral-tiny"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), want), names.end()) << want;
  }
  json l = *BuiltinModelConfig("llama-3.2-1b");
  EXPECT_EQ(l["hidden_size"], 2048);
  EXPECT_EQ(l["num_hidden_layers"], 16);
  EXPECT_EQ(l["num_attention_heads"], 32);
  EXPECT_EQ(l["num_key_value_heads"], 8);
  EXPECT_EQ(l["intermediate_size"], 8192);
  EXPECT_EQ(l["vocab_size"], 128256);
  EXPECT_EQ(l["head_dim"], 64);
  EXPECT_EQ(l["max_position_embeddings"], 131072);
  EXPECT_EQ(l["tie_word_embeddings"], true);
  EXPECT_EQ(l["rope_theta"], 500000.0);
  EXPECT_EQ(l["rope_scaling"]["rope_type"], "llama3");
  EXPECT_EQ(l["rope_scaling"]["factor"], 32.0);
  EXPECT_EQ(l["rope_scaling"]["original_max_position_embeddings"], 8192);
  EXPECT_EQ(l["rope_parameters"]["rope_type"], "llama3");
  EXPECT_EQ(l["rope_parameters"]["rope_theta"], 500000.0);

  json l8 = *BuiltinModelConfig("llama-3-8b");
  EXPECT_EQ(l8["hidden_size"], 4096);
  EXPECT_EQ(l8["intermediate_size"], 14336);
  EXPECT_EQ(l8["tie_word_embeddings"], false);
  EXPECT_EQ(l8["max_position_embeddings"], 8192);

  json g = *BuiltinModelConfig("gpt2-124m");
  EXPECT_EQ(g["n_embd"], 768);
  EXPECT_EQ(g["n_layer"], 12);
  EXPECT_EQ(g["n_positions"], 1024);
  EXPECT_EQ(g["vocab_size"], 50257);
  EXPECT_EQ(g["activation_function"], "gelu_new");

  json q = *BuiltinModelConfig("qwen2-0.5b");
  EXPECT_EQ(q["hidden_size"], 896);
  EXPECT_EQ(q["num_attention_heads"], 14);
  EXPECT_EQ(q["num_key_value_heads"], 2);
  EXPECT_EQ(q["vocab_size"], 151936);
  EXPECT_EQ(q["rope_theta"], 1000000.0);

  json m = *BuiltinModelConfig("mistral-7b");
  EXPECT_EQ(m["vocab_size"], 32000);
  EXPECT_EQ(m["rope_theta"], 1000000.0);
  EXPECT_TRUE(m["sliding_window"].is_null());

  json mt = *BuiltinModelConfig("mistral-tiny");
  EXPECT_EQ(mt["sliding_window"], 128);
  EXPECT_EQ(mt["max_position_embeddings"], 256);
}

TEST(RandomCheckpoint, UnknownShapeListsTheKnownOnes) {
  auto c = BuiltinModelConfig("llama-9000");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find("llama-9000"), std::string::npos);
  EXPECT_NE(c.status().message().find("gpt2-tiny"), std::string::npos);
}

TEST(RandomCheckpoint, BadConfigsNameTheField) {
  auto attempt = [](json config) {
    RandomCheckpointOptions o;
    o.config = std::move(config);
    o.out_dir = baton::testing::MakeTempDir("random-bad");
    o.progress = false;
    return WriteRandomCheckpoint(o);
  };
  json missing = *BuiltinModelConfig("llama-tiny");
  missing.erase("intermediate_size");
  Status s = attempt(missing);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("'intermediate_size'"), std::string::npos) << s.ToString();

  json negative = *BuiltinModelConfig("gpt2-tiny");
  negative["n_embd"] = -3;
  s = attempt(negative);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("'n_embd'"), std::string::npos) << s.ToString();

  json kv = *BuiltinModelConfig("qwen2-tiny");
  kv["num_key_value_heads"] = 3;
  s = attempt(kv);
  EXPECT_NE(s.message().find("'num_key_value_heads'"), std::string::npos) << s.ToString();

  json no_type = *BuiltinModelConfig("llama-tiny");
  no_type.erase("model_type");
  EXPECT_NE(attempt(no_type).message().find("'model_type'"), std::string::npos);

  json bert = *BuiltinModelConfig("llama-tiny");
  bert["model_type"] = "bert";
  EXPECT_EQ(attempt(bert).code(), StatusCode::kUnimplemented);

  EXPECT_EQ(attempt(json::array()).code(), StatusCode::kInvalidArgument);

  RandomCheckpointOptions int_dtype;
  int_dtype.config = *BuiltinModelConfig("llama-tiny");
  int_dtype.dtype = DType::kI8;
  int_dtype.out_dir = baton::testing::MakeTempDir("random-bad");
  EXPECT_EQ(WriteRandomCheckpoint(int_dtype).code(), StatusCode::kInvalidArgument);
}

TEST(RandomCheckpoint, UnwritableOutputNamesThePath) {
  std::string file = baton::testing::MakeTempDir("random-bad") + "/a-file";
  baton::testing::WriteBytes(file, "x");
  RandomCheckpointOptions o;
  o.config = *BuiltinModelConfig("gpt2-tiny");
  o.out_dir = file + "/model";  // a folder inside a regular file
  o.progress = false;
  Status s = WriteRandomCheckpoint(o);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find(o.out_dir), std::string::npos) << s.ToString();
}

}  // namespace
}  // namespace baton
