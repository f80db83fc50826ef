// Malformed .safetensors files, built byte by byte: each must be a specific
// error naming the file and the tensor or field, never a crash (run under
// ASan/UBSan too).
#include <gtest/gtest.h>

#include <random>

#include "runtime/checkpoint/checkpoint.h"
#include "runtime/checkpoint/safetensors_file.h"
#include "tests/test_data.h"
#include "tests/unit/checkpoint/raw_bytes.h"

namespace baton {
namespace {

using baton::testing::RawSafetensors;

class BadSafetensors : public ::testing::Test {
 protected:
  void SetUp() override { path_ = baton::testing::MakeTempDir("bad-safetensors") + "/model.safetensors"; }

  Status OpenBytes(const std::string& bytes) {
    baton::testing::WriteBytes(path_, bytes);
    return SafetensorsFile::Open(path_).status();
  }
  // DataLoss whose message names this file and contains every `needle`.
  void ExpectDataLoss(const Status& s, std::initializer_list<std::string> needles) {
    EXPECT_EQ(s.code(), StatusCode::kDataLoss) << s.ToString();
    EXPECT_NE(s.message().find(path_), std::string::npos) << s.ToString();
    for (const std::string& n : needles)
      EXPECT_NE(s.message().find(n), std::string::npos) << n << " in " << s.ToString();
  }

  std::string path_;
};

// A valid two-tensor file: "a" F32[2] then "b" F32[1, 2].
std::string ValidHeader() {
  return R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
         R"("b":{"dtype":"F32","shape":[1,2],"data_offsets":[8,16]}})";
}
std::string ValidData() { return std::string(16, '\x01'); }

TEST_F(BadSafetensors, TheValidBaselineOpens) {
  auto file =
      SafetensorsFile::Open((baton::testing::WriteBytes(path_, RawSafetensors(ValidHeader(), ValidData())), path_));
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_EQ((*file)->tensors().size(), 2u);
}

TEST_F(BadSafetensors, ShorterThanTheLengthField) {
  ExpectDataLoss(OpenBytes(""), {"8-byte"});
  ExpectDataLoss(OpenBytes("\x05\x00\x00"), {"8-byte"});
}

TEST_F(BadSafetensors, HeaderLengthPastEndOfFile) {
  std::string bytes = RawSafetensors(ValidHeader(), ValidData());
  bytes[0] = static_cast<char>(0xff);  // length 255 + ..., the file is shorter
  bytes[1] = static_cast<char>(0x7f);
  ExpectDataLoss(OpenBytes(bytes), {"header length", "past the end"});
}

TEST_F(BadSafetensors, AbsurdHeaderLength) {
  std::string bytes = RawSafetensors(ValidHeader(), ValidData());
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>(0xff);
  ExpectDataLoss(OpenBytes(bytes), {"header length", "absurd"});
}

TEST_F(BadSafetensors, HeaderIsNotJson) {
  ExpectDataLoss(OpenBytes(RawSafetensors(R"({"a": {"dtype": "F32", )", "")), {"not valid JSON"});
  ExpectDataLoss(OpenBytes(RawSafetensors("", "")), {"not valid JSON"});
  ExpectDataLoss(OpenBytes(RawSafetensors(std::string("{\"a\xff\":1}"), "")), {"not valid JSON"});
}

TEST_F(BadSafetensors, HeaderIsNotAnObject) {
  ExpectDataLoss(OpenBytes(RawSafetensors("[1, 2]", "")), {"not a JSON object"});
}

TEST_F(BadSafetensors, EntryMissingAField) {
  ExpectDataLoss(OpenBytes(RawSafetensors(R"({"w":{"shape":[2],"data_offsets":[0,8]}})", std::string(8, 0))),
                 {"'w'", "dtype"});
  ExpectDataLoss(OpenBytes(RawSafetensors(R"({"w":{"dtype":"F32","data_offsets":[0,8]}})", std::string(8, 0))),
                 {"'w'", "shape"});
  ExpectDataLoss(OpenBytes(RawSafetensors(R"({"w":{"dtype":"F32","shape":[2]}})", std::string(8, 0))),
                 {"'w'", "data_offsets"});
  ExpectDataLoss(OpenBytes(RawSafetensors(R"({"w":7})", "")), {"'w'", "not an object"});
}

TEST_F(BadSafetensors, FieldsOfTheWrongType) {
  ExpectDataLoss(OpenBytes(RawSafetensors(R"({"w":{"dtype":3,"shape":[2],"data_offsets":[0,8]}})", std::string(8, 0))),
                 {"'w'", "dtype"});
  ExpectDataLoss(
      OpenBytes(RawSafetensors(R"({"w":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})", std::string(8, 0))),
      {"'w'", "shape"});
  ExpectDataLoss(
      OpenBytes(RawSafetensors(R"({"w":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", std::string(8, 0))),
      {"'w'", "shape"});
  ExpectDataLoss(OpenBytes(RawSafetensors(R"({"__metadata__":{"format":1}})", "")), {"__metadata__.format"});
  ExpectDataLoss(OpenBytes(RawSafetensors(R"({"__metadata__":[]})", "")), {"__metadata__"});
}

TEST_F(BadSafetensors, UnknownDtypeIsNamed) {
  ExpectDataLoss(
      OpenBytes(RawSafetensors(R"({"w":{"dtype":"F7","shape":[2],"data_offsets":[0,8]}})", std::string(8, 0))),
      {"'w'", "unknown dtype 'F7'"});
}

// Dtypes of the format that Baton cannot load are kept aside: the file opens,
// asking for such a tensor names its dtype.
TEST_F(BadSafetensors, UnsupportedFormatDtypeFailsOnlyWhenRequested) {
  std::string header = R"({"mask":{"dtype":"BOOL","shape":[4],"data_offsets":[0,4]},)"
                       R"("f8":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[4,6]},)"
                       R"("ids":{"dtype":"I64","shape":[1],"data_offsets":[8,16]},)"
                       R"("w":{"dtype":"F32","shape":[2],"data_offsets":[16,24]}})";
  baton::testing::WriteBytes(path_, RawSafetensors(header, std::string(24, 0)));
  auto file = SafetensorsFile::Open(path_);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_EQ((*file)->tensors().size(), 1u);
  EXPECT_EQ((*file)->unsupported_tensors().at("ids"), "I64");
  EXPECT_EQ((*file)->Find("ids"), nullptr);

  auto ckpt = Checkpoint::OpenFile(path_);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().ToString();
  auto f8 = ckpt->Get("f8");
  EXPECT_EQ(f8.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(f8.status().message().find("F8_E4M3"), std::string::npos) << f8.status().ToString();
  EXPECT_NE(f8.status().message().find("'f8'"), std::string::npos) << f8.status().ToString();
  EXPECT_TRUE(ckpt->Get("w").ok());
}

TEST_F(BadSafetensors, UnsupportedDtypeWithWrongSizeIsStillDataLoss) {
  ExpectDataLoss(
      OpenBytes(RawSafetensors(R"({"ids":{"dtype":"I64","shape":[2],"data_offsets":[0,8]}})", std::string(8, 0))),
      {"'ids'", "I64", "needs 16"});
}

TEST_F(BadSafetensors, DataOffsetsMalformed) {
  ExpectDataLoss(
      OpenBytes(RawSafetensors(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", std::string(8, 0))),
      {"'w'", "begin > end"});
  ExpectDataLoss(
      OpenBytes(RawSafetensors(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", std::string(8, 0))),
      {"'w'", "data_offsets"});
  ExpectDataLoss(
      OpenBytes(RawSafetensors(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})", std::string(8, 0))),
      {"'w'", "data_offsets"});
  ExpectDataLoss(
      OpenBytes(RawSafetensors(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":"0-8"}})", std::string(8, 0))),
      {"'w'", "data_offsets"});
}

TEST_F(BadSafetensors, OffsetsPastTheEndOfTheFile) {
  ExpectDataLoss(
      OpenBytes(RawSafetensors(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", std::string(8, 0))),
      {"'w'", "past the data region"});
  // Offsets near 2^64 must not wrap around.
  ExpectDataLoss(OpenBytes(RawSafetensors(
                     R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[18446744073709551608,18446744073709551615]}})",
                     std::string(8, 0))),
                 {"'w'"});
}

TEST_F(BadSafetensors, TruncatedMidData) {
  std::string bytes = RawSafetensors(ValidHeader(), ValidData());
  ExpectDataLoss(OpenBytes(bytes.substr(0, bytes.size() - 5)), {"'b'", "truncated"});
}

TEST_F(BadSafetensors, BytesDoNotMatchShapeAndDtype) {
  ExpectDataLoss(
      OpenBytes(RawSafetensors(R"({"w":{"dtype":"BF16","shape":[3],"data_offsets":[0,8]}})", std::string(8, 0))),
      {"'w'", "BF16", "[3]", "needs 6"});
  ExpectDataLoss(
      OpenBytes(RawSafetensors(R"({"w":{"dtype":"F32","shape":[],"data_offsets":[0,8]}})", std::string(8, 0))),
      {"'w'", "needs 4"});
}

TEST_F(BadSafetensors, NegativeOrHugeDimensions) {
  ExpectDataLoss(
      OpenBytes(RawSafetensors(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", std::string(8, 0))),
      {"'w'", "negative"});
  // The element count overflows 64 bits; it must not wrap into a small size.
  ExpectDataLoss(
      OpenBytes(RawSafetensors(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296,4],"data_offsets":[0,8]}})",
                               std::string(8, 0))),
      {"'w'", "too many elements"});
  ExpectDataLoss(
      OpenBytes(RawSafetensors(R"({"w":{"dtype":"F32","shape":[18446744073709551615],"data_offsets":[0,8]}})",
                               std::string(8, 0))),
      {"'w'", "huge"});
}

TEST_F(BadSafetensors, OverlappingTensors) {
  std::string header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                       R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})";
  ExpectDataLoss(OpenBytes(RawSafetensors(header, std::string(12, 0))), {"'a'", "'b'", "overlap"});
}

TEST_F(BadSafetensors, EmptyTensorsMayShareAnOffset) {
  std::string header = R"({"e":{"dtype":"F32","shape":[0, 5],"data_offsets":[4,4]},)"
                       R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  baton::testing::WriteBytes(path_, RawSafetensors(header, std::string(8, 0)));
  auto file = SafetensorsFile::Open(path_);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_EQ((*file)->View(*(*file)->Find("e")).numel(), 0);
}

// A header whose length is not a multiple of 8 leaves F32 data misaligned;
// the view then copies so typed access stays defined (UBSan checks this).
TEST_F(BadSafetensors, MisalignedDataIsReadCorrectly) {
  std::string header = R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}})";
  while (header.size() % 4 == 0) header += " ";  // 8 + length is not a multiple of 4
  std::string data;
  for (float f : {1.5f, -2.0f, 3.25f}) data.append(reinterpret_cast<const char*>(&f), 4);
  baton::testing::WriteBytes(path_, RawSafetensors(header, data));
  auto file = SafetensorsFile::Open(path_);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  Tensor t = (*file)->View(*(*file)->Find("w"));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw()) % 4, 0u);
  EXPECT_EQ(t.data<float>()[0], 1.5f);
  EXPECT_EQ(t.data<float>()[1], -2.0f);
  EXPECT_EQ(t.data<float>()[2], 3.25f);
}

TEST_F(BadSafetensors, MissingTensorThroughCheckpointNamesIt) {
  baton::testing::WriteBytes(path_, RawSafetensors(ValidHeader(), ValidData()));
  auto ckpt = Checkpoint::OpenFile(path_);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().ToString();
  auto t = ckpt->Get("model.layers.3.mlp.up_proj.weight");
  EXPECT_EQ(t.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(t.status().message(), path_ + ": tensor 'model.layers.3.mlp.up_proj.weight' is missing");
}

// Every prefix of a real file and random corruptions of its header: errors,
// never crashes or reads out of bounds.
TEST_F(BadSafetensors, TruncationsAndCorruptionsNeverCrash) {
  const std::string good = RawSafetensors(ValidHeader(), ValidData());
  for (size_t n = 0; n < good.size(); ++n) {
    Status s = OpenBytes(good.substr(0, n));
    EXPECT_EQ(s.code(), StatusCode::kDataLoss) << "prefix " << n << ": " << s.ToString();
  }
  std::mt19937 rng(7);
  int opened = 0;
  for (int trial = 0; trial < 500; ++trial) {
    std::string bytes = good;
    int flips = 1 + static_cast<int>(rng() % 3);
    for (int f = 0; f < flips; ++f) {
      size_t at = 8 + rng() % ValidHeader().size();
      bytes[at] = static_cast<char>(rng() % 256);
    }
    baton::testing::WriteBytes(path_, bytes);
    auto file = SafetensorsFile::Open(path_);
    if (!file.ok()) {
      EXPECT_EQ(file.status().code(), StatusCode::kDataLoss) << file.status().ToString();
      continue;
    }
    ++opened;
    for (const TensorInfo& t : (*file)->tensors()) {  // whatever opened must be readable
      ASSERT_LE(t.offset + t.nbytes, (*file)->file_size());
      Tensor v = (*file)->View(t);
      volatile unsigned char sink = 0;
      for (size_t i = 0; i < v.nbytes(); ++i) sink = sink + static_cast<const unsigned char*>(v.raw())[i];
      (void)sink;
    }
  }
  EXPECT_GT(opened, 0);  // some flips hit harmless bytes (spaces, metadata)
}

}  // namespace
}  // namespace baton
