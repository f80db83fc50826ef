// Shared by the tokenizer tests: test-data tokenizers, loaded once per process
// (the GPT-2 one takes a noticeable time to parse, more so under ASan).
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "runtime/tokenizer/tokenizer.h"
#include "tests/test_data.h"

namespace baton::testing {

// The tokenizer at tests/data/`relative`; fails the test and returns null if it does not load.
inline const Tokenizer* CachedTokenizer(const std::string& relative) {
  static std::mutex mu;
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(relative);
  if (it == cache.end()) {
    auto loaded = Tokenizer::FromFile(TestDataPath(relative));
    EXPECT_TRUE(loaded.ok()) << loaded.status().ToString();
    if (!loaded.ok()) return nullptr;
    it = cache.emplace(relative, std::move(loaded).value()).first;
  }
  return it->second.get();
}

// Every tokenizer under tests/data, for properties that must hold for all.
inline const char* const kAllTokenizers[] = {
    "gpt2-mini/tokenizer.json",
    "gpt2-tokenizer/tokenizer.json",
    "tokenizer_sp/llama2/tokenizer.json",
    "tokenizer_sp/mistral/tokenizer.json",
    "tokenizer_sp/metaspace/tokenizer.json",
    "tokenizer_sp/llama3/tokenizer.json",
    "tokenizer_sp/qwen2/tokenizer.json",
};

}  // namespace baton::testing
