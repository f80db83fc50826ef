#include "runtime/tokenizer/stream_decoder.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "runtime/tokenizer/tokenizer.h"
#include "runtime/tokenizer/utf8.h"
#include "tests/unit/tokenizer/tokenizer_test_util.h"

namespace baton {
namespace {

const std::string kMixedText = "Hi 🚀 大语言模型 — é\u0301 ok\n  x";

class StreamDecoderAllTokenizers : public ::testing::TestWithParam<const char*> {};

// Each piece handed out is whole characters: byte-level and <0xXX> tokens
// that carry part of a character are held until the character completes.
TEST_P(StreamDecoderAllTokenizers, NeverSplitsAUtf8Character) {
  const Tokenizer* t = testing::CachedTokenizer(GetParam());
  ASSERT_NE(t, nullptr);
  const std::vector<int32_t> ids = t->Encode(kMixedText);
  StreamDecoder stream(*t);
  std::string all;
  for (int32_t id : ids) {
    const std::string piece = stream.Push(id);
    EXPECT_TRUE(IsValidUtf8(piece)) << "after id " << id;
    EXPECT_EQ(piece.find(kReplacementCharacter), std::string::npos);
    all += piece;
  }
  all += stream.Flush();
  EXPECT_EQ(all, t->Decode(ids));
}

// Out-of-range and special ids are skipped exactly as Decode skips them.
TEST_P(StreamDecoderAllTokenizers, SkipsWhatDecodeSkips) {
  const Tokenizer* t = testing::CachedTokenizer(GetParam());
  ASSERT_NE(t, nullptr);
  std::vector<int32_t> ids = t->Encode("a b c");
  ids.insert(ids.begin() + 1, -5);
  ids.push_back(t->vocab_size() + 100);
  ids.push_back(t->vocab_size() - 1);
  for (bool skip_special : {true, false}) {
    StreamDecoder stream(*t, skip_special);
    std::string all;
    for (int32_t id : ids) all += stream.Push(id);
    all += stream.Flush();
    EXPECT_EQ(all, t->Decode(ids, skip_special));
  }
}

INSTANTIATE_TEST_SUITE_P(Tokenizers, StreamDecoderAllTokenizers, ::testing::ValuesIn(testing::kAllTokenizers));

TEST(StreamDecoder, HoldsBackAnIncompleteCharacterUntilItCompletes) {
  const Tokenizer* t = testing::CachedTokenizer("gpt2-tokenizer/tokenizer.json");
  ASSERT_NE(t, nullptr);
  // GPT-2 spells 🚀 (F0 9F 9A 80) with several byte-level tokens.
  const std::vector<int32_t> ids = t->Encode("🚀");
  ASSERT_GT(ids.size(), 1u);
  StreamDecoder stream(*t);
  for (size_t i = 0; i + 1 < ids.size(); ++i) EXPECT_EQ(stream.Push(ids[i]), "");
  EXPECT_EQ(stream.Push(ids.back()), "🚀");
  EXPECT_EQ(stream.Flush(), "");
}

TEST(StreamDecoder, FlushGivesAnUnfinishedCharacterAsReplacement) {
  const Tokenizer* t = testing::CachedTokenizer("tokenizer_sp/llama2/tokenizer.json");
  ASSERT_NE(t, nullptr);
  const auto byte = t->TokenToId("<0xF0>");
  ASSERT_TRUE(byte.has_value());
  StreamDecoder stream(*t);
  EXPECT_EQ(stream.Push(*t->TokenToId("▁a")), "a");
  EXPECT_EQ(stream.Push(*byte), "");
  EXPECT_EQ(stream.Flush(), std::string(kReplacementCharacter));
  EXPECT_EQ(t->Decode({*t->TokenToId("▁a"), *byte}), "a\xEF\xBF\xBD");  // U+FFFD
}

// SentencePiece's leading space is dropped once, for the sequence's first
// token, not for the first token of every piece handed out.
TEST(StreamDecoder, KeepsSpacesBetweenSentencePieceWords) {
  for (const char* path : {"tokenizer_sp/llama2/tokenizer.json", "tokenizer_sp/metaspace/tokenizer.json"}) {
    const Tokenizer* t = testing::CachedTokenizer(path);
    ASSERT_NE(t, nullptr);
    const std::vector<int32_t> ids = t->Encode("  the license of the program");
    StreamDecoder stream(*t);
    std::string all;
    for (int32_t id : ids) all += stream.Push(id);
    all += stream.Flush();
    EXPECT_EQ(all, t->Decode(ids)) << path;
  }
}

}  // namespace
}  // namespace baton
