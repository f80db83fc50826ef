// A compiled PCRE2 regular expression, for the patterns tokenizer.json
// holds (pre-tokenizer splits, Replace normalizers and decoders).
//
// Hugging Face compiles them with Oniguruma; PCRE2 with UTF and UCP accepts
// the same syntax for what these files use (\p{L}, (?i:...), lookahead).
// Invalid UTF-8 in the subject never matches and never fails a search.
// Immutable after Compile; safe to use from several threads.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "runtime/core/status.h"

namespace baton {

class Regex {
 public:
  // `where` names the pattern's place for the error ("tokenizer.json: pre_tokenizer.pattern").
  static StatusOr<std::unique_ptr<Regex>> Compile(std::string_view pattern, const std::string& where);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Byte ranges [begin, end) of the successive non-overlapping, non-empty
  // matches in `text`.
  std::vector<std::pair<size_t, size_t>> FindAll(std::string_view text) const;

 private:
  explicit Regex(void* code) : code_(code) {}
  void* code_;  // pcre2_code_8*, kept opaque so users need no PCRE2 headers
};

}  // namespace baton
