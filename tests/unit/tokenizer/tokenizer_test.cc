// The Tokenizer API beyond the reference cases: lookups, added-token flags,
// merge spellings, invalid UTF-8, threads.
#include "runtime/tokenizer/tokenizer.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <thread>
#include <vector>

#include "tests/unit/tokenizer/tokenizer_test_util.h"

namespace baton {
namespace {

TEST(Tokenizer, LookupsOnGpt2) {
  const Tokenizer* t = testing::CachedTokenizer("gpt2-tokenizer/tokenizer.json");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->vocab_size(), 50257);
  EXPECT_EQ(t->TokenToId("<|endoftext|>"), 50256);
  EXPECT_EQ(t->TokenToId("Hello"), 15496);
  EXPECT_EQ(t->TokenToId("no such token"), std::nullopt);
  EXPECT_EQ(t->IdToToken(15496), "Hello");
  EXPECT_EQ(t->IdToToken(50256), "<|endoftext|>");
  EXPECT_EQ(t->IdToToken(50257), std::nullopt);
  EXPECT_EQ(t->IdToToken(-1), std::nullopt);
  EXPECT_TRUE(t->IsSpecial(50256));
  EXPECT_FALSE(t->IsSpecial(15496));
  EXPECT_FALSE(t->IsSpecial(123456));
}

TEST(Tokenizer, LookupsOnLlama3StyleWithSpecialsPastTheModelVocab) {
  const Tokenizer* t = testing::CachedTokenizer("tokenizer_sp/llama3/tokenizer.json");
  ASSERT_NE(t, nullptr);
  const auto bos = t->TokenToId("<|begin_of_text|>");
  ASSERT_TRUE(bos.has_value());
  EXPECT_GE(t->vocab_size(), *bos + 1);
  EXPECT_TRUE(t->IsSpecial(*bos));
  EXPECT_FALSE(t->IsSpecial(*t->TokenToId("<|tool|>")));  // added, not special
  EXPECT_EQ(t->Encode("hi").front(), *bos);
  EXPECT_NE(t->Encode("hi", /*add_special_tokens=*/false).front(), *bos);
}

TEST(Tokenizer, DecodeSkipsOutOfRangeIds) {
  const Tokenizer* t = testing::CachedTokenizer("gpt2-tokenizer/tokenizer.json");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->Decode({15496, -1, 99999999, 50257, 11}), "Hello,");
}

TEST(Tokenizer, MergesAsStringsAndAsPairsEncodeAlike) {
  nlohmann::json pairs = testing::LoadTestJson("gpt2-mini/tokenizer.json");
  nlohmann::json strings = pairs;
  for (auto& m : strings["model"]["merges"]) m = m[0].get<std::string>() + " " + m[1].get<std::string>();
  auto a = Tokenizer::FromJson(pairs, "pairs.json");
  auto b = Tokenizer::FromJson(strings, "strings.json");
  ASSERT_TRUE(a.ok() && b.ok());
  const std::string text = "The quick brown fox, 12345 times; the end.";
  EXPECT_EQ((*a)->Encode(text), (*b)->Encode(text));
}

// A hand-made vocab to check the added-token flags one by one.
nlohmann::json FlagsTokenizer(bool single_word, bool lstrip, bool rstrip) {
  nlohmann::json j = nlohmann::json::parse(R"({
    "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, " ": 2, "ab": 3}, "merges": [["a", "b"]]},
    "decoder": {"type": "Fuse"}
  })");
  j["added_tokens"] = {{{"id", 4},
                        {"content", "[X]"},
                        {"single_word", single_word},
                        {"lstrip", lstrip},
                        {"rstrip", rstrip},
                        {"normalized", false},
                        {"special", false}}};
  return j;
}

TEST(Tokenizer, AddedTokenFlags) {
  auto plain = Tokenizer::FromJson(FlagsTokenizer(false, false, false), "flags.json");
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_EQ((*plain)->Encode("ab [X] ab"), (std::vector<int32_t>{3, 2, 4, 2, 3}));
  EXPECT_EQ((*plain)->Encode("ab[X]ab"), (std::vector<int32_t>{3, 4, 3}));

  auto stripped = Tokenizer::FromJson(FlagsTokenizer(false, true, true), "flags.json");
  ASSERT_TRUE(stripped.ok());
  EXPECT_EQ((*stripped)->Encode("ab  [X]  ab"), (std::vector<int32_t>{3, 4, 3}));

  auto single = Tokenizer::FromJson(FlagsTokenizer(true, false, false), "flags.json");
  ASSERT_TRUE(single.ok());
  EXPECT_EQ((*single)->Encode("ab [X] ab"), (std::vector<int32_t>{3, 2, 4, 2, 3}));
  // Inside a word the token is not one: "[X]" has no vocab entries, so BPE drops its characters.
  EXPECT_EQ((*single)->Encode("ab[X]ab"), (std::vector<int32_t>{3, 3}));
}

TEST(Tokenizer, IgnoreMergesTakesWholeWordsFromTheVocab) {
  // The merges alone cannot build "abc" (no "ab c" or "a bc"), but the vocab has it.
  nlohmann::json j = nlohmann::json::parse(R"({
    "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "c": 2, "bc": 3, "abc": 4},
              "merges": [["b", "c"]], "ignore_merges": true}
  })");
  auto with = Tokenizer::FromJson(j, "t.json");
  ASSERT_TRUE(with.ok());
  EXPECT_EQ((*with)->Encode("abc"), (std::vector<int32_t>{4}));
  j["model"]["ignore_merges"] = false;
  auto without = Tokenizer::FromJson(j, "t.json");
  ASSERT_TRUE(without.ok());
  EXPECT_EQ((*without)->Encode("abc"), (std::vector<int32_t>{0, 3}));
}

TEST(Tokenizer, UnknownCharactersFuseIntoOneUnk) {
  nlohmann::json j = nlohmann::json::parse(R"({
    "model": {"type": "BPE", "vocab": {"<unk>": 0, "a": 1}, "merges": [], "unk_token": "<unk>", "fuse_unk": true}
  })");
  auto fused = Tokenizer::FromJson(j, "t.json");
  ASSERT_TRUE(fused.ok());
  EXPECT_EQ((*fused)->Encode("axyza"), (std::vector<int32_t>{1, 0, 1}));
  j["model"]["fuse_unk"] = false;
  auto separate = Tokenizer::FromJson(j, "t.json");
  ASSERT_TRUE(separate.ok());
  EXPECT_EQ((*separate)->Encode("axyza"), (std::vector<int32_t>{1, 0, 0, 0, 1}));
}

class AllTokenizers : public ::testing::TestWithParam<const char*> {};

// Input is bytes: invalid UTF-8 must neither crash nor trip ASan/UBSan, and
// byte-level tokenizers must still round-trip it.
TEST_P(AllTokenizers, InvalidUtf8AndRandomIdsAreSafe) {
  const Tokenizer* t = testing::CachedTokenizer(GetParam());
  ASSERT_NE(t, nullptr);
  std::mt19937 rng(1234);
  const std::string samples[] = {
      "\xff",          "\xc3",        "abc\xe4\xb8", "\xed\xa0\x80", "\xf4\x90\x80\x80 x", std::string("nul\0byte", 8),
      "\xc0\xaf tail", "\x80\x80\x80"};
  for (const std::string& s : samples) {
    const auto ids = t->Encode(s);
    (void)t->Decode(ids);
  }
  for (int round = 0; round < 200; ++round) {
    std::string s(rng() % 40, '\0');
    for (char& c : s) c = static_cast<char>(rng() % 256);
    const auto ids = t->Encode(s);
    for (int32_t id : ids) EXPECT_TRUE(t->IdToToken(id).has_value());
    (void)t->Decode(ids);
    std::vector<int32_t> random_ids(rng() % 20);
    for (int32_t& id : random_ids) id = static_cast<int32_t>(rng() % (t->vocab_size() + 10)) - 5;
    (void)t->Decode(random_ids, round % 2 == 0);
  }
}

TEST_P(AllTokenizers, EncodesFromManyThreadsAtOnce) {
  const Tokenizer* t = testing::CachedTokenizer(GetParam());
  ASSERT_NE(t, nullptr);
  const std::string text = "Threads share one tokenizer: 123 ünïcødé 🚀\n";
  const std::vector<int32_t> expected = t->Encode(text);
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      for (int n = 0; n < 50; ++n) mismatches[i] += t->Encode(text) != expected;
    });
  }
  for (auto& th : threads) th.join();
  for (int m : mismatches) EXPECT_EQ(m, 0);
}

INSTANTIATE_TEST_SUITE_P(Tokenizers, AllTokenizers, ::testing::ValuesIn(testing::kAllTokenizers));

TEST(Tokenizer, ByteLevelRoundTripsInvalidUtf8Bytes) {
  const Tokenizer* t = testing::CachedTokenizer("gpt2-tokenizer/tokenizer.json");
  ASSERT_NE(t, nullptr);
  // Decode is lossy (HF returns a string), so invalid bytes come back as U+FFFD.
  EXPECT_EQ(t->Decode(t->Encode("ok\xff")), "ok\xEF\xBF\xBD");
}

}  // namespace
}  // namespace baton
