// Reference cases produced by the Hugging Face `tokenizers` library: the
// GPT-2 fixtures, and the small Llama-2 / Mistral / Metaspace / Llama-3 /
// Qwen2 style tokenizers of tests/data/tokenizer_sp (made by make_cases.py).
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "runtime/tokenizer/tokenizer.h"
#include "tests/test_data.h"
#include "tests/unit/tokenizer/tokenizer_test_util.h"

namespace baton {
namespace {

struct CaseFile {
  const char* name;
  const char* tokenizer;  // under tests/data
  const char* cases;
};

const CaseFile kCaseFiles[] = {
    {"gpt2_mini", "gpt2-mini/tokenizer.json", "tokenizer_cases_mini.json"},
    {"gpt2", "gpt2-tokenizer/tokenizer.json", "tokenizer_cases_gpt2.json"},
    {"llama2", "tokenizer_sp/llama2/tokenizer.json", "tokenizer_sp/llama2/cases.json"},
    {"mistral", "tokenizer_sp/mistral/tokenizer.json", "tokenizer_sp/mistral/cases.json"},
    {"metaspace", "tokenizer_sp/metaspace/tokenizer.json", "tokenizer_sp/metaspace/cases.json"},
    {"llama3", "tokenizer_sp/llama3/tokenizer.json", "tokenizer_sp/llama3/cases.json"},
    {"qwen2", "tokenizer_sp/qwen2/tokenizer.json", "tokenizer_sp/qwen2/cases.json"},
};

class TokenizerCasesTest : public ::testing::TestWithParam<CaseFile> {
 protected:
  void SetUp() override {
    tokenizer_ = testing::CachedTokenizer(GetParam().tokenizer);
    ASSERT_NE(tokenizer_, nullptr);
    cases_ = testing::LoadTestJson(GetParam().cases);
    ASSERT_TRUE(cases_.is_array());
    ASSERT_FALSE(cases_.empty());
  }

  const Tokenizer* tokenizer_ = nullptr;
  nlohmann::json cases_;
};

std::string Describe(const nlohmann::json& c) { return "text: " + c["text"].dump(); }

TEST_P(TokenizerCasesTest, EncodeMatchesReference) {
  for (const auto& c : cases_) {
    EXPECT_EQ(tokenizer_->Encode(c["text"].get<std::string>()), c["ids"].get<std::vector<int32_t>>()) << Describe(c);
  }
}

TEST_P(TokenizerCasesTest, DecodeMatchesReference) {
  for (const auto& c : cases_) {
    const auto ids = c["ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(tokenizer_->Decode(ids), c["decoded"].get<std::string>()) << Describe(c);
    if (c.contains("decoded_keep_special")) {
      EXPECT_EQ(tokenizer_->Decode(ids, /*skip_special_tokens=*/false), c["decoded_keep_special"].get<std::string>())
          << Describe(c);
    }
  }
}

TEST_P(TokenizerCasesTest, StreamDecoderDeltasConcatenateToDecode) {
  for (const auto& c : cases_) {
    for (bool skip_special : {true, false}) {
      const char* key = skip_special ? "decoded" : "decoded_keep_special";
      if (!c.contains(key)) continue;
      StreamDecoder stream(*tokenizer_, skip_special);
      std::string text;
      for (int32_t id : c["ids"].get<std::vector<int32_t>>()) text += stream.Push(id);
      text += stream.Flush();
      EXPECT_EQ(text, c[key].get<std::string>()) << Describe(c) << " skip_special=" << skip_special;
    }
  }
}

TEST_P(TokenizerCasesTest, EncodeWithoutSpecialTokensAddsNone) {
  for (const auto& c : cases_) {
    const std::string text = c["text"].get<std::string>();
    const std::vector<int32_t> with = tokenizer_->Encode(text);
    const std::vector<int32_t> without = tokenizer_->Encode(text, /*add_special_tokens=*/false);
    // The post-processors here only prepend (Llama's BOS) or add nothing.
    ASSERT_LE(without.size(), with.size()) << Describe(c);
    EXPECT_TRUE(std::equal(without.begin(), without.end(), with.end() - without.size())) << Describe(c);
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, TokenizerCasesTest, ::testing::ValuesIn(kCaseFiles),
                         [](const ::testing::TestParamInfo<CaseFile>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace baton
