#include "runtime/checkpoint/checkpoint.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <numeric>

#include "runtime/checkpoint/safetensors_writer.h"
#include "tests/test_data.h"
#include "tests/unit/checkpoint/raw_bytes.h"

namespace baton {
namespace {

using baton::testing::TestDataPath;

Checkpoint OpenOrDie(const std::string& dir) {
  auto c = Checkpoint::Open(dir);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return c.ok() ? *c : Checkpoint();
}

TEST(Checkpoint, Gpt2NamesResolveWithAndWithoutPrefix) {
  Checkpoint c = OpenOrDie(TestDataPath("gpt2-mini"));
  // Stored as transformers writes it ("transformer.h.0...."); original GPT-2
  // files and most code use the bare name.
  for (const char* name : {"transformer.h.0.attn.c_attn.weight", "h.0.attn.c_attn.weight"}) {
    ASSERT_TRUE(c.Has(name)) << name;
    auto t = c.Get(name);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    EXPECT_EQ(t->shape(), (Shape{128, 384})) << name;
  }
  EXPECT_TRUE(c.Has("wte.weight"));
  EXPECT_FALSE(c.Has("model.wte.weight"));  // the wrong prefix is not stripped into a match
  EXPECT_FALSE(c.Has("lm_head.weight"));    // tied
  EXPECT_EQ(c.Get("h.0.attn.c_attn.weight")->raw(), c.Get("transformer.h.0.attn.c_attn.weight")->raw());
}

TEST(Checkpoint, LlamaNamesResolveWithAndWithoutPrefix) {
  Checkpoint c = OpenOrDie(TestDataPath("llama-mini"));
  EXPECT_TRUE(c.Has("model.layers.0.self_attn.q_proj.weight"));
  EXPECT_TRUE(c.Has("layers.0.self_attn.q_proj.weight"));
  EXPECT_TRUE(c.Has("embed_tokens.weight"));
  EXPECT_FALSE(c.Has("transformer.norm.weight"));  // one prefix is never swapped for the other
  EXPECT_FALSE(c.Has("model.layers.4.self_attn.q_proj.weight"));
}

// The original OpenAI GPT-2 checkpoints store bare names ("h.0...."); code
// asking for transformers' spelling must still find them.
TEST(Checkpoint, BareStoredNamesResolveFromPrefixedQueries) {
  const std::string dir = baton::testing::MakeTempDir("bare-names");
  auto w = SafetensorsWriter::Create(dir + "/model.safetensors",
                                     {{"wte.weight", DType::kF32, {2}}, {"h.0.attn.c_attn.weight", DType::kF32, {1}}});
  ASSERT_TRUE(w.ok());
  float v[2] = {1, 2};
  ASSERT_TRUE((*w)->Write("wte.weight", v, 8).ok());
  ASSERT_TRUE((*w)->Write("h.0.attn.c_attn.weight", v, 4).ok());
  ASSERT_TRUE((*w)->Finish().ok());
  Checkpoint c = OpenOrDie(dir);
  EXPECT_TRUE(c.Has("transformer.h.0.attn.c_attn.weight"));
  EXPECT_TRUE(c.Has("model.wte.weight"));
  EXPECT_TRUE(c.Has("wte.weight"));
  auto t = c.GetF32("transformer.wte.weight", {2});
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->data<float>()[1], 2.0f);
  EXPECT_EQ(c.Find("transformer.wte.weight")->name, "wte.weight");
}

TEST(Checkpoint, MissingTensorMessageNamesFileAndTensor) {
  Checkpoint c = OpenOrDie(TestDataPath("llama-mini"));
  auto t = c.Get("model.layers.3.mlp.up_proj.bias");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kNotFound);
  EXPECT_NE(t.status().message().find("model.safetensors: tensor 'model.layers.3.mlp.up_proj.bias' is missing"),
            std::string::npos)
      << t.status().ToString();
}

TEST(Checkpoint, NamesAndTotalBytes) {
  Checkpoint c = OpenOrDie(TestDataPath("llama-mini"));
  std::vector<std::string> names = c.TensorNames();
  EXPECT_EQ(names.size(), 38u);
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  EXPECT_EQ(names.front(), "model.embed_tokens.weight");
  auto header = baton::testing::ParseRawHeader(baton::testing::ReadBytes(TestDataPath("llama-mini/model.safetensors")));
  uint64_t max_end = 0;
  for (auto& [k, v] : header.json.items()) {
    if (k != "__metadata__") max_end = std::max<uint64_t>(max_end, v["data_offsets"][1].get<uint64_t>());
  }
  EXPECT_EQ(c.TotalBytes(), max_end);  // densely packed file
}

TEST(Checkpoint, GetF32ConvertsAndChecksShape) {
  Checkpoint c = OpenOrDie(TestDataPath("llama-mini"));
  const std::string raw =
      baton::testing::RawTensorBytes(baton::testing::ReadBytes(TestDataPath("llama-mini/model.safetensors")),
                                     "model.layers.0.self_attn.k_proj.weight");
  auto t = c.GetF32("layers.0.self_attn.k_proj.weight", {128, 256});
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->dtype(), DType::kF32);
  for (int64_t i = 0; i < t->numel(); i += 97) {
    ASSERT_EQ(t->data<float>()[i], baton::testing::LeBf16(raw, static_cast<size_t>(i))) << i;
  }

  auto bad = c.GetF32("model.layers.0.self_attn.k_proj.weight", {256, 256});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kDataLoss);
  for (const char* needle : {"model.layers.0.self_attn.k_proj.weight", "[128, 256]", "[256, 256]"}) {
    EXPECT_NE(bad.status().message().find(needle), std::string::npos) << bad.status().ToString();
  }
}

TEST(Checkpoint, GetF32OfF32IsACopy) {
  Checkpoint c = OpenOrDie(TestDataPath("gpt2-mini"));
  auto view = c.Get("ln_f.weight");
  auto copy = c.GetF32("ln_f.weight", {128});
  ASSERT_TRUE(view.ok() && copy.ok());
  EXPECT_NE(view->raw(), copy->raw());
  EXPECT_EQ(std::memcmp(view->raw(), copy->raw(), view->nbytes()), 0);
}

TEST(Checkpoint, APathToTheFileItselfWorks) {
  Checkpoint c = OpenOrDie(TestDataPath("gpt2-mini/model.safetensors"));
  EXPECT_TRUE(c.Has("wte.weight"));
}

TEST(Checkpoint, FolderWithoutWeightsIsNotFoundNamingIt) {
  std::string dir = baton::testing::MakeTempDir("empty-model");
  auto c = Checkpoint::Open(dir);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kNotFound);
  EXPECT_NE(c.status().message().find(dir), std::string::npos);
  EXPECT_NE(c.status().message().find("model.safetensors"), std::string::npos);

  auto missing = Checkpoint::Open(dir + "/nope");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find(dir + "/nope"), std::string::npos);
}

// ---- Sharded checkpoints -------------------------------------------------

std::vector<float> Iota(size_t n, float start) {
  std::vector<float> v(n);
  std::iota(v.begin(), v.end(), start);
  return v;
}

void WriteShard(const std::string& path, const std::vector<std::pair<std::string, std::vector<float>>>& tensors) {
  std::vector<TensorDecl> decls;
  for (const auto& [name, values] : tensors)
    decls.push_back({name, DType::kF32, {static_cast<int64_t>(values.size())}});
  auto w = SafetensorsWriter::Create(path, decls);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  for (const auto& [name, values] : tensors) {
    ASSERT_TRUE((*w)->Write(name, values.data(), values.size() * 4).ok());
  }
  ASSERT_TRUE((*w)->Finish().ok());
}

void WriteIndex(const std::string& dir, const nlohmann::json& weight_map) {
  nlohmann::json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", weight_map}};
  baton::testing::WriteBytes(dir + "/model.safetensors.index.json", index.dump(2));
}

class ShardedCheckpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = baton::testing::MakeTempDir("sharded");
    WriteShard(dir_ + "/model-00001-of-00002.safetensors",
               {{"model.embed_tokens.weight", Iota(6, 0)}, {"model.layers.0.mlp.up_proj.weight", Iota(4, 100)}});
    WriteShard(dir_ + "/model-00002-of-00002.safetensors",
               {{"model.norm.weight", Iota(3, 200)}, {"lm_head.weight", Iota(5, 300)}});
  }
  nlohmann::json FullMap() const {
    return {{"model.embed_tokens.weight", "model-00001-of-00002.safetensors"},
            {"model.layers.0.mlp.up_proj.weight", "model-00001-of-00002.safetensors"},
            {"model.norm.weight", "model-00002-of-00002.safetensors"},
            {"lm_head.weight", "model-00002-of-00002.safetensors"}};
  }
  std::string dir_;
};

TEST_F(ShardedCheckpoint, ReadsBackEveryTensorFromItsShard) {
  WriteIndex(dir_, FullMap());
  Checkpoint c = OpenOrDie(dir_);
  EXPECT_EQ(c.TensorNames().size(), 4u);
  EXPECT_EQ(c.TotalBytes(), (6u + 4u + 3u + 5u) * 4u);
  struct Want {
    const char* name;
    size_t n;
    float start;
  };
  for (const Want& w : {Want{"model.embed_tokens.weight", 6, 0}, Want{"layers.0.mlp.up_proj.weight", 4, 100},
                        Want{"norm.weight", 3, 200}, Want{"lm_head.weight", 5, 300}}) {
    auto t = c.GetF32(w.name, {static_cast<int64_t>(w.n)});
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    EXPECT_EQ(std::vector<float>(t->data<float>(), t->data<float>() + w.n), Iota(w.n, w.start)) << w.name;
  }
  EXPECT_NE(c.source().find("model.safetensors.index.json"), std::string::npos);
}

TEST_F(ShardedCheckpoint, IndexNamingAMissingShardIsNotFoundNamingIt) {
  nlohmann::json map = FullMap();
  map["model.norm.weight"] = "model-00003-of-00003.safetensors";
  WriteIndex(dir_, map);
  auto c = Checkpoint::Open(dir_);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kNotFound);
  EXPECT_NE(c.status().message().find("model-00003-of-00003.safetensors"), std::string::npos) << c.status().ToString();
}

TEST_F(ShardedCheckpoint, IndexListingATensorItsShardLacksIsDataLoss) {
  nlohmann::json map = FullMap();
  map["model.norm.weight"] = "model-00001-of-00002.safetensors";
  WriteIndex(dir_, map);
  auto c = Checkpoint::Open(dir_);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(c.status().message().find("'model.norm.weight'"), std::string::npos) << c.status().ToString();
  EXPECT_NE(c.status().message().find("model-00001-of-00002.safetensors"), std::string::npos);
}

TEST_F(ShardedCheckpoint, MalformedIndexIsDataLoss) {
  baton::testing::WriteBytes(dir_ + "/model.safetensors.index.json", "{\"weight_map\": ");
  EXPECT_EQ(Checkpoint::Open(dir_).status().code(), StatusCode::kDataLoss);

  WriteIndex(dir_, nlohmann::json::array());
  auto not_object = Checkpoint::Open(dir_);
  EXPECT_EQ(not_object.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(not_object.status().message().find("weight_map"), std::string::npos);

  baton::testing::WriteBytes(dir_ + "/model.safetensors.index.json", "{}");
  EXPECT_NE(Checkpoint::Open(dir_).status().message().find("weight_map"), std::string::npos);

  nlohmann::json map = FullMap();
  map["model.norm.weight"] = "../model-00002-of-00002.safetensors";  // outside the folder
  WriteIndex(dir_, map);
  auto escape = Checkpoint::Open(dir_);
  EXPECT_EQ(escape.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(escape.status().message().find("'model.norm.weight'"), std::string::npos);

  map["model.norm.weight"] = 3;
  WriteIndex(dir_, map);
  EXPECT_EQ(Checkpoint::Open(dir_).status().code(), StatusCode::kDataLoss);
}

TEST_F(ShardedCheckpoint, CorruptShardIsDataLossNamingTheShard) {
  WriteIndex(dir_, FullMap());
  const std::string shard = dir_ + "/model-00002-of-00002.safetensors";
  std::string bytes = baton::testing::ReadBytes(shard);
  baton::testing::WriteBytes(shard, bytes.substr(0, bytes.size() - 3));
  auto c = Checkpoint::Open(dir_);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(c.status().message().find(shard), std::string::npos) << c.status().ToString();
}

TEST_F(ShardedCheckpoint, SingleFileWinsOverTheIndex) {
  WriteIndex(dir_, FullMap());
  WriteShard(dir_ + "/model.safetensors", {{"only.weight", Iota(2, 7)}});
  Checkpoint c = OpenOrDie(dir_);
  EXPECT_EQ(c.TensorNames(), std::vector<std::string>{"only.weight"});
}

}  // namespace
}  // namespace baton
