// Loading failures: each must name the file and the field or type at fault.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "runtime/tokenizer/tokenizer.h"
#include "tests/test_data.h"

namespace baton {
namespace {

// gmock is not linked here; a substring check with a readable failure.
#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << "message: " << (haystack)

// A minimal valid byte-level BPE tokenizer.json to break one field at a time.
nlohmann::json MinimalTokenizer() {
  return nlohmann::json::parse(R"({
    "version": "1.0",
    "added_tokens": [{"id": 3, "content": "<eos>", "special": true}],
    "normalizer": null,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
    "post_processor": null,
    "decoder": {"type": "ByteLevel"},
    "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}
  })");
}

Status LoadStatus(const nlohmann::json& j) { return Tokenizer::FromJson(j, "tokenizer.json").status(); }

TEST(TokenizerErrors, MinimalTokenizerLoads) {
  auto t = Tokenizer::FromJson(MinimalTokenizer(), "tokenizer.json");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ((*t)->Encode("abab"), (std::vector<int32_t>{2, 2}));
  EXPECT_EQ((*t)->vocab_size(), 4);
}

TEST(TokenizerErrors, UnknownModelTypeIsUnimplementedAndNamed) {
  for (const char* type : {"WordPiece", "Unigram", "WordLevel"}) {
    nlohmann::json j = MinimalTokenizer();
    j["model"]["type"] = type;
    Status s = LoadStatus(j);
    EXPECT_EQ(s.code(), StatusCode::kUnimplemented);
    EXPECT_EQ(s.message(), std::string("tokenizer.json: model.type '") + type + "' is not supported (expected BPE)");
  }
}

TEST(TokenizerErrors, MissingVocabIsDataLoss) {
  nlohmann::json j = MinimalTokenizer();
  j["model"].erase("vocab");
  Status s = LoadStatus(j);
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_EQ(s.message(), "tokenizer.json: model.vocab is missing");
}

TEST(TokenizerErrors, MissingModelIsDataLoss) {
  nlohmann::json j = MinimalTokenizer();
  j.erase("model");
  EXPECT_EQ(LoadStatus(j).code(), StatusCode::kDataLoss);
  EXPECT_CONTAINS(LoadStatus(j).message(), "tokenizer.json: model is missing");
}

TEST(TokenizerErrors, MergeWithUnknownTokenIsDataLoss) {
  nlohmann::json j = MinimalTokenizer();
  j["model"]["merges"] = {"a c"};
  Status s = LoadStatus(j);
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_CONTAINS(s.message(), "tokenizer.json: model.merges[0] 'a c'");
}

TEST(TokenizerErrors, UnknownComponentTypesAreNamed) {
  struct Case {
    const char* field;
    nlohmann::json value;
    const char* expected;
  };
  const Case cases[] = {
      {"pre_tokenizer", {{"type", "Whitespace"}}, "tokenizer.json: pre_tokenizer.type 'Whitespace' is not supported"},
      {"decoder", {{"type", "WordPiece"}}, "tokenizer.json: decoder.type 'WordPiece' is not supported"},
      {"normalizer", {{"type", "Lowercase"}}, "tokenizer.json: normalizer.type 'Lowercase' is not supported"},
      {"normalizer",
       {{"type", "Sequence"}, {"normalizers", {{{"type", "NFKD"}}}}},
       "tokenizer.json: normalizer.normalizers[0].type 'NFKD' is not supported"},
      {"post_processor", {{"type", "Mystery"}}, "tokenizer.json: post_processor.type 'Mystery' is not supported"},
  };
  for (const Case& c : cases) {
    nlohmann::json j = MinimalTokenizer();
    j[c.field] = c.value;
    Status s = LoadStatus(j);
    EXPECT_EQ(s.code(), StatusCode::kUnimplemented) << c.expected;
    EXPECT_CONTAINS(s.message(), c.expected);
  }
}

TEST(TokenizerErrors, BadSplitRegexIsDataLoss) {
  nlohmann::json j = MinimalTokenizer();
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
  Status s = LoadStatus(j);
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_CONTAINS(s.message(), "tokenizer.json: pre_tokenizer.pattern.Regex: regex '(unclosed'");
}

TEST(TokenizerErrors, WrongFieldKindIsDataLoss) {
  nlohmann::json j = MinimalTokenizer();
  j["added_tokens"][0]["content"] = 7;
  Status s = LoadStatus(j);
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_CONTAINS(s.message(), "tokenizer.json: added_tokens[0].content must be a string (got number)");
}

TEST(TokenizerErrors, MalformedJsonFileIsDataLossNamingTheFile) {
  const std::string path = testing::MakeTempDir("tokenizer") + "/tokenizer.json";
  std::ofstream(path) << R"({"model": {"type": "BPE", "vocab": {"a": 0,)";
  auto t = Tokenizer::FromFile(path);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kDataLoss);
  EXPECT_CONTAINS(t.status().message(), path + ": not valid JSON");
}

TEST(TokenizerErrors, MissingFileIsNotFound) {
  const std::string path = testing::MakeTempDir("tokenizer") + "/absent.json";
  auto t = Tokenizer::FromFile(path);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kNotFound);
  EXPECT_CONTAINS(t.status().message(), path);
}

}  // namespace
}  // namespace baton
