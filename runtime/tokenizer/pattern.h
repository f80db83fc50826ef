// The `pattern` of Split, Replace normalizers and Replace decoders:
// {"String": "literal"} or {"Regex": "..."}.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "runtime/core/status.h"
#include "runtime/tokenizer/json_fields.h"
#include "runtime/tokenizer/regex.h"

namespace baton {

class Pattern {
 public:
  // `at` is the pattern object itself.
  static StatusOr<Pattern> FromJson(const nlohmann::json& pattern, const JsonPath& at);

  // Byte ranges of the successive non-overlapping, non-empty matches.
  std::vector<std::pair<size_t, size_t>> FindAll(std::string_view text) const;
  // `text` with every match replaced by `content`.
  std::string ReplaceAll(std::string_view text, std::string_view content) const;

 private:
  std::string literal_;
  std::shared_ptr<const Regex> regex_;  // null for a literal
};

}  // namespace baton
