#include "runtime/checkpoint/safetensors_writer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "runtime/checkpoint/safetensors_file.h"
#include "tests/test_data.h"
#include "tests/unit/checkpoint/raw_bytes.h"

namespace baton {
namespace {

namespace fs = std::filesystem;

struct Sample {
  TensorDecl decl;
  std::string bytes;
};

// Tensors of every loadable dtype, one of them empty, with random contents.
std::vector<Sample> Samples() {
  std::mt19937 rng(1);
  auto random_bytes = [&](size_t n) {
    std::string s(n, '\0');
    for (char& c : s) c = static_cast<char>(rng() & 0xff);
    return s;
  };
  std::vector<Sample> out;
  out.push_back({{"emb.weight", DType::kBF16, {7, 5}}, random_bytes(7 * 5 * 2)});
  out.push_back({{"empty", DType::kF32, {0, 3}}, ""});
  out.push_back({{"layer.f32", DType::kF32, {3, 11}}, random_bytes(3 * 11 * 4)});
  out.push_back({{"layer.f16", DType::kF16, {9}}, random_bytes(9 * 2)});
  out.push_back({{"ids", DType::kI32, {2, 2}}, random_bytes(16)});
  out.push_back({{"q", DType::kI8, {13}}, random_bytes(13)});
  out.push_back({{"scalar", DType::kF32, {}}, random_bytes(4)});
  return out;
}

std::vector<TensorDecl> Decls(const std::vector<Sample>& samples) {
  std::vector<TensorDecl> d;
  for (const Sample& s : samples) d.push_back(s.decl);
  return d;
}

// Writes `samples` in chunks of at most `chunk` bytes (0 = whole tensors).
void WriteAll(const std::string& path, const std::vector<Sample>& samples, size_t chunk) {
  auto w = SafetensorsWriter::Create(path, Decls(samples));
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  for (const Sample& s : samples) {
    size_t step = chunk == 0 ? std::max<size_t>(s.bytes.size(), 1) : chunk;
    for (size_t at = 0; at < s.bytes.size(); at += step) {
      size_t n = std::min(step, s.bytes.size() - at);
      ASSERT_TRUE((*w)->Write(s.decl.name, s.bytes.data() + at, n).ok()) << s.decl.name;
    }
  }
  Status done = (*w)->Finish();
  ASSERT_TRUE(done.ok()) << done.ToString();
  EXPECT_EQ((*w)->file_size(), fs::file_size(path));
}

TEST(SafetensorsWriter, RoundTripsEveryDtype) {
  const std::string path = baton::testing::MakeTempDir("writer") + "/t.safetensors";
  const auto samples = Samples();
  WriteAll(path, samples, 0);

  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_EQ((*file)->metadata().at("format"), "pt");
  ASSERT_EQ((*file)->tensors().size(), samples.size());
  for (size_t i = 0; i < samples.size(); ++i) {
    const TensorInfo& t = (*file)->tensors()[i];  // file order = declaration order
    EXPECT_EQ(t.name, samples[i].decl.name);
    EXPECT_EQ(t.dtype, samples[i].decl.dtype) << t.name;
    EXPECT_EQ(t.shape, samples[i].decl.shape) << t.name;
    Tensor v = (*file)->View(t);
    ASSERT_EQ(v.nbytes(), samples[i].bytes.size()) << t.name;
    EXPECT_EQ(std::string(static_cast<const char*>(v.raw()), v.nbytes()), samples[i].bytes) << t.name;
  }
}

TEST(SafetensorsWriter, HeaderIsPaddedJsonLikeTheReference) {
  const std::string path = baton::testing::MakeTempDir("writer") + "/t.safetensors";
  WriteAll(path, Samples(), 0);
  const std::string bytes = baton::testing::ReadBytes(path);
  auto header = baton::testing::ParseRawHeader(bytes);
  EXPECT_EQ(header.length % 8, 0u);
  const std::string text = bytes.substr(8, header.length);
  EXPECT_EQ(text.front(), '{');
  EXPECT_EQ(text.find_last_not_of(' '), text.find_last_of('}'));  // only spaces after the JSON
  EXPECT_EQ(header.json["__metadata__"], (nlohmann::json{{"format", "pt"}}));
  EXPECT_EQ(header.json["emb.weight"]["dtype"], "BF16");
  EXPECT_EQ(header.json["emb.weight"]["data_offsets"], (nlohmann::json{0, 70}));
  EXPECT_EQ(header.json["empty"]["data_offsets"], (nlohmann::json{70, 70}));
  EXPECT_EQ(header.json["scalar"]["shape"], nlohmann::json::array());
  EXPECT_EQ(header.json.size(), Samples().size() + 1);
}

TEST(SafetensorsWriter, ChunkedWritesGiveIdenticalBytes) {
  const std::string dir = baton::testing::MakeTempDir("writer");
  const auto samples = Samples();
  WriteAll(dir + "/whole.safetensors", samples, 0);
  for (size_t chunk : {1, 3, 8, 64}) {
    const std::string path = dir + "/chunked" + std::to_string(chunk) + ".safetensors";
    WriteAll(path, samples, chunk);
    EXPECT_EQ(baton::testing::ReadBytes(path), baton::testing::ReadBytes(dir + "/whole.safetensors")) << chunk;
  }
}

TEST(SafetensorsWriter, NoMetadataWhenEmpty) {
  const std::string path = baton::testing::MakeTempDir("writer") + "/t.safetensors";
  auto w = SafetensorsWriter::Create(path, {{"a", DType::kI8, {1}}}, {});
  ASSERT_TRUE(w.ok());
  const char one = 1;
  ASSERT_TRUE((*w)->Write("a", &one, 1).ok());
  ASSERT_TRUE((*w)->Finish().ok());
  EXPECT_FALSE(baton::testing::ParseRawHeader(baton::testing::ReadBytes(path)).json.contains("__metadata__"));
}

TEST(SafetensorsWriter, FinishBeforeEverythingIsWrittenFails) {
  const std::string path = baton::testing::MakeTempDir("writer") + "/t.safetensors";
  auto w = SafetensorsWriter::Create(path, {{"a", DType::kF32, {2}}, {"b", DType::kF32, {2}}});
  ASSERT_TRUE(w.ok());
  float v[2] = {1, 2};
  ASSERT_TRUE((*w)->Write("a", v, 8).ok());
  ASSERT_TRUE((*w)->Write("b", v, 4).ok());
  Status s = (*w)->Finish();
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("'b'"), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("4 of 8"), std::string::npos) << s.ToString();
  EXPECT_FALSE(fs::exists(path));  // nothing that looks complete
  ASSERT_TRUE((*w)->Write("b", v + 1, 4).ok());
  EXPECT_TRUE((*w)->Finish().ok());
  EXPECT_TRUE(fs::exists(path));
}

TEST(SafetensorsWriter, WritesOutOfOrderOrTooLongAreRejected) {
  const std::string path = baton::testing::MakeTempDir("writer") + "/t.safetensors";
  auto w = SafetensorsWriter::Create(path, {{"a", DType::kF32, {2}}, {"b", DType::kF32, {2}}});
  ASSERT_TRUE(w.ok());
  float v[3] = {1, 2, 3};
  Status wrong = (*w)->Write("b", v, 8);
  EXPECT_EQ(wrong.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(wrong.message().find("'a'"), std::string::npos) << wrong.ToString();
  Status too_long = (*w)->Write("a", v, 12);
  EXPECT_EQ(too_long.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(too_long.message().find("'a'"), std::string::npos) << too_long.ToString();
  ASSERT_TRUE((*w)->Write("a", v, 8).ok());
  ASSERT_TRUE((*w)->Write("b", v, 8).ok());
  EXPECT_FALSE((*w)->Write("b", v, 4).ok());  // past the last tensor
  EXPECT_TRUE((*w)->Finish().ok());
  EXPECT_FALSE((*w)->Write("a", v, 4).ok());
}

TEST(SafetensorsWriter, WriteTensorChecksDtypeAndShape) {
  const std::string path = baton::testing::MakeTempDir("writer") + "/t.safetensors";
  auto w = SafetensorsWriter::Create(path, {{"a", DType::kF32, {2, 3}}});
  ASSERT_TRUE(w.ok());
  Status wrong = (*w)->WriteTensor("a", Tensor::Zeros({3, 2}, DType::kF32));
  EXPECT_EQ(wrong.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(wrong.message().find("[2, 3]"), std::string::npos) << wrong.ToString();
  ASSERT_TRUE((*w)->WriteTensor("a", Tensor::Zeros({2, 3}, DType::kF32)).ok());
  EXPECT_TRUE((*w)->Finish().ok());
}

TEST(SafetensorsWriter, BadDeclarationsAreRejected) {
  const std::string path = baton::testing::MakeTempDir("writer") + "/t.safetensors";
  EXPECT_EQ(SafetensorsWriter::Create(path, {{"a", DType::kF32, {1}}, {"a", DType::kF32, {1}}}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(SafetensorsWriter::Create(path, {{"a", DType::kF32, {-1}}}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(SafetensorsWriter::Create(path, {{"__metadata__", DType::kF32, {1}}}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(SafetensorsWriter::Create(path, {{"", DType::kF32, {1}}}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(SafetensorsWriter::Create(path, {{"bad\xff", DType::kF32, {1}}}).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(SafetensorsWriter, UnwritableFolderNamesThePath) {
  const std::string path = baton::testing::MakeTempDir("writer") + "/no/such/dir/t.safetensors";
  auto w = SafetensorsWriter::Create(path, {{"a", DType::kF32, {1}}});
  ASSERT_FALSE(w.ok());
  EXPECT_NE(w.status().message().find(path), std::string::npos) << w.status().ToString();
}

TEST(SafetensorsWriter, AbandonedWriterLeavesNoFile) {
  const std::string dir = baton::testing::MakeTempDir("writer");
  {
    auto w = SafetensorsWriter::Create(dir + "/t.safetensors", {{"a", DType::kF32, {1}}});
    ASSERT_TRUE(w.ok());
  }
  EXPECT_TRUE(fs::is_empty(dir));
}

}  // namespace
}  // namespace baton
