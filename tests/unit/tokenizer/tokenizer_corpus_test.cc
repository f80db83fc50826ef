// The whole 77 KB corpus through GPT-2, and through the Llama-2 and Llama-3
// style tokenizers, against ids from HF `tokenizers` (corpus_ids.json).
// For Llama-2 the corpus is a single BPE "word" (no pre-tokenizer), which
// exercises the priority-queue merge on a long input.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/tokenizer/tokenizer.h"
#include "tests/test_data.h"
#include "tests/unit/tokenizer/tokenizer_test_util.h"

namespace baton {
namespace {

std::string ReadCorpus() {
  std::ifstream in(testing::TestDataPath("corpus.txt"), std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// First index where the two differ, for a readable failure.
size_t FirstDifference(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
  return i;
}

class CorpusTest : public ::testing::TestWithParam<std::pair<const char*, const char*>> {};

TEST_P(CorpusTest, WholeCorpusMatchesReferenceAndRoundTrips) {
  const auto [name, path] = GetParam();
  const Tokenizer* tokenizer = testing::CachedTokenizer(path);
  ASSERT_NE(tokenizer, nullptr);
  const std::string corpus = ReadCorpus();
  ASSERT_GT(corpus.size(), 70000u);
  const auto expected = testing::LoadTestJson("tokenizer_sp/corpus_ids.json")[name].get<std::vector<int32_t>>();

  const auto start = std::chrono::steady_clock::now();
  const std::vector<int32_t> ids = tokenizer->Encode(corpus);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("[ %s ] encoded %zu bytes into %zu ids in %.1f ms\n", name, corpus.size(), ids.size(), seconds * 1e3);

  ASSERT_EQ(ids.size(), expected.size()) << "first difference at id #" << FirstDifference(ids, expected);
  EXPECT_EQ(ids, expected) << "first difference at id #" << FirstDifference(ids, expected);
  EXPECT_EQ(tokenizer->Decode(ids), corpus);

  StreamDecoder stream(*tokenizer);
  std::string streamed;
  for (int32_t id : ids) streamed += stream.Push(id);
  streamed += stream.Flush();
  EXPECT_EQ(streamed, corpus);

#if defined(NDEBUG) && !defined(__SANITIZE_ADDRESS__)
  EXPECT_LT(seconds, 0.5) << "encoding the corpus should take well under a second in Release";
#endif
}

INSTANTIATE_TEST_SUITE_P(Tokenizers, CorpusTest,
                         ::testing::Values(std::make_pair("gpt2", "gpt2-tokenizer/tokenizer.json"),
                                           std::make_pair("llama2", "tokenizer_sp/llama2/tokenizer.json"),
                                           std::make_pair("llama3", "tokenizer_sp/llama3/tokenizer.json")),
                         [](const auto& info) { return std::string(info.param.first); });

}  // namespace
}  // namespace baton
