// The BPE model of tokenizer.json: vocab, ranked merges, and the options
// byte-level (GPT-2, Llama-3, Qwen2) and SentencePiece-style (Llama-2,
// Mistral: byte_fallback, unk_token, fuse_unk) files use.
//
// Encoding a word starts from its characters and repeatedly applies the
// lowest-ranked merge present, leftmost first; a priority queue keyed by
// (rank, position) makes that O(n log n), so a whole SentencePiece sentence
// (one long "word") stays fast. Immutable after loading; thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "runtime/core/status.h"
#include "runtime/tokenizer/json_fields.h"
#include "runtime/tokenizer/string_hash.h"

namespace baton {

class BpeModel {
 public:
  // `model` is tokenizer.json's "model" object, found at `at`.
  static StatusOr<std::unique_ptr<BpeModel>> FromJson(const nlohmann::json& model, const JsonPath& at);

  // Appends the ids of one pre-tokenized word.
  void Encode(std::string_view word, std::vector<int32_t>* ids) const;

  std::optional<int32_t> TokenToId(std::string_view token) const;
  // Null for an id the vocab does not have.
  const std::string* IdToToken(int32_t id) const;
  // Largest id in the vocab + 1 (0 for an empty vocab).
  int32_t id_limit() const { return static_cast<int32_t>(id_to_token_.size()); }

 private:
  struct Merge {
    int32_t rank;
    int32_t merged_id;
  };
  // A part of the word being merged: a doubly linked list over a vector.
  struct Symbol {
    int32_t id;
    int32_t prev;
    int32_t next;
    bool merged_away;
  };

  BpeModel() = default;
  Status LoadVocab(const nlohmann::json& model, const JsonPath& at);
  Status LoadMerges(const nlohmann::json& model, const JsonPath& at);
  // The word's characters as ids (unknown ones via byte fallback or unk).
  std::vector<Symbol> InitialSymbols(std::string_view word) const;
  void ApplyMerges(std::vector<Symbol>* symbols) const;
  const Merge* FindMerge(int32_t left, int32_t right) const;

  StringMap<int32_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> has_id_;
  std::unordered_map<uint64_t, Merge> merges_;  // key: left id << 32 | right id
  std::array<int32_t, 256> byte_ids_{};         // <0xXX> tokens for byte fallback; -1 if absent
  std::optional<int32_t> unk_id_;
  bool byte_fallback_ = false;
  bool fuse_unk_ = false;
  bool ignore_merges_ = false;
  std::string continuing_subword_prefix_;
  std::string end_of_word_suffix_;
};

}  // namespace baton
