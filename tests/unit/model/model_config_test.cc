#include "runtime/model/model_config.h"

#include <gtest/gtest.h>

#include <cmath>

#include "runtime/model/rope.h"
#include "tests/test_data.h"

namespace baton {
namespace {

using nlohmann::json;

json LlamaJson() {
  return json{{"model_type", "llama"},           {"hidden_size", 256},       {"num_hidden_layers", 4},
              {"num_attention_heads", 4},        {"num_key_value_heads", 2}, {"intermediate_size", 688},
              {"max_position_embeddings", 1024}, {"vocab_size", 2048},       {"rope_theta", 10000.0}};
}

void ExpectErrorNaming(const StatusOr<ModelConfig>& c, const std::string& what) {
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find(what), std::string::npos) << c.status().ToString();
  EXPECT_EQ(c.status().ExitCode(), 2) << c.status().ToString();
}

TEST(ModelConfig, ReadsGpt2Fixture) {
  auto c = LoadModelConfig(testing::TestDataPath("gpt2-mini"));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->norm, NormKind::kLayerNorm);
  EXPECT_EQ(c->mlp, MlpKind::kGeluNew);
  EXPECT_EQ(c->positions, PositionKind::kLearned);
  EXPECT_EQ(c->head_dim, 64);
  EXPECT_EQ(c->intermediate_size, 512);  // n_inner null -> 4 * n_embd
  EXPECT_TRUE(c->tie_word_embeddings);
  EXPECT_TRUE(c->qkv_bias && c->o_bias && c->mlp_bias);
  EXPECT_EQ(c->eos_token_ids, std::vector<int>{0});
}

TEST(ModelConfig, ReadsLlamaFixtureWithRopeParameters) {
  auto c = LoadModelConfig(testing::TestDataPath("llama-mini"));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->num_kv_heads, 2);
  EXPECT_EQ(c->head_dim, 64);
  EXPECT_FLOAT_EQ(c->rope.theta, 500000.0f);
  EXPECT_EQ(c->stored_dtype, DType::kBF16);
  EXPECT_EQ(c->rope.inv_freq_dtype, DType::kBF16);
  EXPECT_FALSE(c->qkv_bias);
}

TEST(ModelConfig, RopeThetaAtTopLevelAndDefaults) {
  auto c = ParseModelConfig(LlamaJson(), "config.json");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_FLOAT_EQ(c->rope.theta, 10000.0f);
  EXPECT_EQ(c->head_dim, 64);
  EXPECT_FALSE(c->tie_word_embeddings);
}

TEST(ModelConfig, MissingFieldIsNamed) {
  json j = LlamaJson();
  j.erase("num_attention_heads");
  ExpectErrorNaming(ParseModelConfig(j, "config.json"), "num_attention_heads");
  j = LlamaJson();
  j["hidden_size"] = "big";
  ExpectErrorNaming(ParseModelConfig(j, "config.json"), "hidden_size");
  j = LlamaJson();
  j["vocab_size"] = -5;
  ExpectErrorNaming(ParseModelConfig(j, "config.json"), "vocab_size");
}

TEST(ModelConfig, UnknownModelTypeIsNamed) {
  json j = LlamaJson();
  j["model_type"] = "bert";
  ExpectErrorNaming(ParseModelConfig(j, "config.json"), "bert");
  j.erase("model_type");
  ExpectErrorNaming(ParseModelConfig(j, "config.json"), "model_type");
}

TEST(ModelConfig, ContradictoryHeadsAreNamed) {
  json j = LlamaJson();
  j["num_key_value_heads"] = 3;
  ExpectErrorNaming(ParseModelConfig(j, "config.json"), "num_key_value_heads");
  j = LlamaJson();
  j["num_attention_heads"] = 3;  // does not divide 256 and no head_dim given
  ExpectErrorNaming(ParseModelConfig(j, "config.json"), "num_attention_heads");
}

TEST(ModelConfig, UnsupportedRopeTypeIsNamed) {
  json j = LlamaJson();
  j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  auto c = ParseModelConfig(j, "config.json");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("yarn"), std::string::npos);
  j["rope_scaling"] = {{"rope_type", 3}};
  EXPECT_FALSE(ParseModelConfig(j, "config.json").ok());
}

TEST(ModelConfig, Qwen2AndMistralSpecifics) {
  json q = LlamaJson();
  q["model_type"] = "qwen2";
  q["sliding_window"] = 16;  // ignored: use_sliding_window defaults to false
  auto qc = ParseModelConfig(q, "config.json");
  ASSERT_TRUE(qc.ok());
  EXPECT_TRUE(qc->qkv_bias);
  EXPECT_FALSE(qc->o_bias);
  EXPECT_EQ(qc->sliding_window, 0);
  json m = LlamaJson();
  m["model_type"] = "mistral";
  m["sliding_window"] = 16;
  auto mc = ParseModelConfig(m, "config.json");
  ASSERT_TRUE(mc.ok());
  EXPECT_EQ(mc->sliding_window, 16);
  m["sliding_window"] = nullptr;
  EXPECT_EQ(ParseModelConfig(m, "config.json")->sliding_window, 0);
}

// llama3 scaling against the published formula evaluated in double.
TEST(Rope, Llama3ScalingMatchesFormula) {
  json j = LlamaJson();
  j["rope_theta"] = 500000.0;
  j["rope_scaling"] = {{"rope_type", "llama3"},
                       {"factor", 32.0},
                       {"low_freq_factor", 1.0},
                       {"high_freq_factor", 4.0},
                       {"original_max_position_embeddings", 8192}};
  auto c = ParseModelConfig(j, "config.json");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  const auto inv = RopeInverseFrequencies(c->rope, 64);
  int scaled = 0, kept = 0, blended = 0;
  for (int i = 0; i < 32; ++i) {
    const double base = 1.0 / std::pow(500000.0, 2.0 * i / 64.0);
    const double wavelen = 2 * M_PI / base;
    double expected = base;
    if (wavelen > 8192.0) {
      expected = base / 32.0, ++scaled;
    } else if (wavelen >= 8192.0 / 4.0) {
      const double smooth = (8192.0 / wavelen - 1.0) / 3.0;
      expected = (1 - smooth) * base / 32.0 + smooth * base, ++blended;
    } else {
      ++kept;
    }
    EXPECT_NEAR(inv[i], expected, 2e-6 * expected) << i;
  }
  EXPECT_GT(scaled, 0);
  EXPECT_GT(kept, 0);
  EXPECT_GT(blended, 0);
}

}  // namespace
}  // namespace baton
