#include "runtime/checkpoint/safetensors_file.h"

#include <gtest/gtest.h>

#include <vector>

#include "tests/test_data.h"
#include "tests/unit/checkpoint/raw_bytes.h"

namespace baton {
namespace {

using baton::testing::LoadTestJson;
using baton::testing::TestDataPath;

std::shared_ptr<SafetensorsFile> OpenOrDie(const std::string& path) {
  auto file = SafetensorsFile::Open(path);
  EXPECT_TRUE(file.ok()) << file.status().ToString();
  return file.ok() ? *file : nullptr;
}

TEST(SafetensorsFile, Gpt2MiniHasEveryTensorInF32WithConfigShapes) {
  auto file = OpenOrDie(TestDataPath("gpt2-mini/model.safetensors"));
  ASSERT_NE(file, nullptr);
  auto config = LoadTestJson("gpt2-mini/config.json");
  const int64_t n = config["n_embd"], layers = config["n_layer"], vocab = config["vocab_size"],
                positions = config["n_positions"];

  // 12 per layer + wte, wpe, ln_f.{weight,bias}; tied, so no lm_head.
  EXPECT_EQ(file->tensors().size(), static_cast<size_t>(12 * layers + 4));
  for (const TensorInfo& t : file->tensors()) EXPECT_EQ(t.dtype, DType::kF32) << t.name;
  EXPECT_TRUE(file->unsupported_tensors().empty());
  EXPECT_EQ(file->metadata().at("format"), "pt");

  struct Want {
    std::string name;
    Shape shape;
  };
  std::vector<Want> wants = {
      {"transformer.wte.weight", {vocab, n}},
      {"transformer.wpe.weight", {positions, n}},
      {"transformer.h.0.attn.c_attn.weight", {n, 3 * n}},  // Conv1D: [in, out]
      {"transformer.h.0.attn.c_attn.bias", {3 * n}},
      {"transformer.h.3.mlp.c_fc.weight", {n, 4 * n}},
      {"transformer.h.3.mlp.c_proj.weight", {4 * n, n}},
      {"transformer.ln_f.bias", {n}},
  };
  for (const Want& w : wants) {
    const TensorInfo* t = file->Find(w.name);
    ASSERT_NE(t, nullptr) << w.name;
    EXPECT_EQ(t->shape, w.shape) << w.name;
    EXPECT_EQ(t->nbytes, static_cast<uint64_t>(NumElements(w.shape)) * 4) << w.name;
  }
  EXPECT_EQ(file->Find("h.0.attn.c_attn.weight"), nullptr);  // the file has no prefix magic
  EXPECT_EQ(file->Find("lm_head.weight"), nullptr);
}

TEST(SafetensorsFile, LlamaMiniIsBf16WithGqaShapes) {
  auto file = OpenOrDie(TestDataPath("llama-mini/model.safetensors"));
  ASSERT_NE(file, nullptr);
  auto config = LoadTestJson("llama-mini/config.json");
  const int64_t hidden = config["hidden_size"], layers = config["num_hidden_layers"], head_dim = config["head_dim"],
                kv = config["num_key_value_heads"], heads = config["num_attention_heads"],
                ffn = config["intermediate_size"], vocab = config["vocab_size"];
  EXPECT_EQ(file->tensors().size(), static_cast<size_t>(9 * layers + 2));
  for (const TensorInfo& t : file->tensors()) EXPECT_EQ(t.dtype, DType::kBF16) << t.name;

  EXPECT_EQ(file->Find("model.embed_tokens.weight")->shape, (Shape{vocab, hidden}));
  EXPECT_EQ(file->Find("model.layers.0.self_attn.q_proj.weight")->shape, (Shape{heads * head_dim, hidden}));
  EXPECT_EQ(file->Find("model.layers.2.self_attn.k_proj.weight")->shape, (Shape{kv * head_dim, hidden}));
  EXPECT_EQ(file->Find("model.layers.3.mlp.down_proj.weight")->shape, (Shape{hidden, ffn}));
  EXPECT_EQ(file->Find("model.norm.weight")->shape, (Shape{hidden}));
  EXPECT_EQ(file->Find("lm_head.weight"), nullptr);
}

TEST(SafetensorsFile, TensorsAreInFileOrderWithAbsoluteOffsets) {
  const std::string path = TestDataPath("llama-mini/model.safetensors");
  auto file = OpenOrDie(path);
  ASSERT_NE(file, nullptr);
  auto header = baton::testing::ParseRawHeader(baton::testing::ReadBytes(path));
  uint64_t prev_end = 8 + header.length;
  for (const TensorInfo& t : file->tensors()) {
    EXPECT_EQ(t.offset, prev_end) << t.name;  // this file is densely packed
    uint64_t begin = header.json[t.name]["data_offsets"][0];
    EXPECT_EQ(t.offset, 8 + header.length + begin) << t.name;
    prev_end = t.offset + t.nbytes;
  }
  EXPECT_EQ(prev_end, file->file_size());
}

// Values through View + ConvertToF32 against the test's own decoding of the bytes.
TEST(SafetensorsFile, ViewValuesMatchAnIndependentParseF32) {
  const std::string path = TestDataPath("gpt2-mini/model.safetensors");
  const std::string bytes = baton::testing::ReadBytes(path);
  auto file = OpenOrDie(path);
  ASSERT_NE(file, nullptr);
  for (const char* name : {"transformer.h.1.attn.c_attn.weight", "transformer.ln_f.weight", "transformer.wpe.weight"}) {
    const std::string raw = baton::testing::RawTensorBytes(bytes, name);
    Tensor view = file->View(*file->Find(name));
    ASSERT_EQ(view.dtype(), DType::kF32);
    ASSERT_EQ(view.nbytes(), raw.size());
    std::vector<float> got(view.numel());
    ConvertToF32(view.raw(), view.dtype(), got.size(), got.data());
    for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], baton::testing::LeF32(raw, i)) << name << "[" << i << "]";
  }
}

TEST(SafetensorsFile, ViewValuesMatchAnIndependentParseBf16) {
  const std::string path = TestDataPath("llama-mini/model.safetensors");
  const std::string bytes = baton::testing::ReadBytes(path);
  auto file = OpenOrDie(path);
  ASSERT_NE(file, nullptr);
  for (const char* name : {"model.layers.1.self_attn.v_proj.weight", "model.norm.weight"}) {
    const std::string raw = baton::testing::RawTensorBytes(bytes, name);
    Tensor f32 = file->View(*file->Find(name)).ToF32();
    ASSERT_EQ(static_cast<size_t>(f32.numel()) * 2, raw.size());
    bool any_nonzero = false;
    for (int64_t i = 0; i < f32.numel(); ++i) {
      ASSERT_EQ(f32.data<float>()[i], baton::testing::LeBf16(raw, static_cast<size_t>(i))) << name << "[" << i << "]";
      any_nonzero |= f32.data<float>()[i] != 0.0f;
    }
    EXPECT_TRUE(any_nonzero) << name;
  }
}

TEST(SafetensorsFile, ViewsAreZeroCopyAndOutliveTheFileObject) {
  const std::string path = TestDataPath("llama-mini/model.safetensors");
  const std::string raw = baton::testing::RawTensorBytes(baton::testing::ReadBytes(path), "model.norm.weight");
  Tensor view;
  {
    auto file = OpenOrDie(path);
    ASSERT_NE(file, nullptr);
    const TensorInfo* info = file->Find("model.norm.weight");
    view = file->View(*info);
    Tensor again = file->View(*info);
    EXPECT_EQ(view.raw(), again.raw());  // the same mapped bytes, not copies
  }
  // The file object is gone; the mapping must still be readable (ASan/segv would catch it).
  ASSERT_EQ(view.nbytes(), raw.size());
  EXPECT_EQ(std::memcmp(view.raw(), raw.data(), raw.size()), 0);
}

TEST(SafetensorsFile, MissingFileIsNotFoundNamingIt) {
  auto file = SafetensorsFile::Open("/nonexistent/dir/model.safetensors");
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), StatusCode::kNotFound);
  EXPECT_NE(file.status().message().find("/nonexistent/dir/model.safetensors"), std::string::npos);
}

TEST(SafetensorsFile, DirectoryIsRejected) {
  auto file = SafetensorsFile::Open(TestDataPath("gpt2-mini"));
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace baton
