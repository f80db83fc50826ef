// The `added_tokens` of tokenizer.json: strings (mostly special tokens like
// <s> or <|im_start|>) that are cut out of the input before normalization
// and pre-tokenization and map straight to their ids.
//
// Matching is leftmost-longest. Flags as in HF: lstrip/rstrip make a token
// swallow the whitespace beside it, single_word accepts a match only between
// non-word characters, normalized tokens are matched in the normalized text
// (after the normalizer ran over both the text and the token). Immutable
// after construction; thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "runtime/core/status.h"
#include "runtime/tokenizer/json_fields.h"
#include "runtime/tokenizer/normalizer.h"
#include "runtime/tokenizer/string_hash.h"

namespace baton {

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
  bool special = false;
};

class AddedTokens {
 public:
  // A stretch of input: plain text to tokenize (token_id < 0) or an added token.
  struct Segment {
    size_t begin;
    size_t end;
    int32_t token_id;
  };

  // `normalizer` (may be null) rewrites the content of normalized tokens.
  static StatusOr<AddedTokens> FromJson(const nlohmann::json& added_tokens, const JsonPath& at,
                                        const Normalizer* normalizer);

  // Cuts `text` at the tokens whose `normalized` flag equals `normalized`.
  // Segments cover the text in order; empty plain segments are left out.
  std::vector<Segment> Split(std::string_view text, bool normalized) const;

  const AddedToken* FindById(int32_t id) const;
  std::optional<int32_t> FindByContent(std::string_view content) const;
  // Largest id + 1 (0 when there are none).
  int32_t id_limit() const { return id_limit_; }
  const std::vector<AddedToken>& tokens() const { return tokens_; }

 private:
  // The strings to look for, one set per `normalized` flag.
  struct Matcher {
    struct Entry {
      std::string text;
      size_t token_index;
    };
    // Entries by first byte, longest first, so the first hit is the longest.
    std::array<std::vector<Entry>, 256> by_first_byte;
    bool empty = true;
  };

  const Matcher& matcher(bool normalized) const { return normalized ? normalized_matcher_ : raw_matcher_; }

  std::vector<AddedToken> tokens_;
  std::unordered_map<int32_t, size_t> index_by_id_;
  StringMap<int32_t> id_by_content_;
  int32_t id_limit_ = 0;
  Matcher raw_matcher_;
  Matcher normalized_matcher_;
};

}  // namespace baton
