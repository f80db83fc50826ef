#include "runtime/tokenizer/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "runtime/tokenizer/utf8.h"

namespace baton {
namespace {

pcre2_code* Code(void* p) { return static_cast<pcre2_code*>(p); }

}  // namespace

StatusOr<std::unique_ptr<Regex>> Regex::Compile(std::string_view pattern, const std::string& where) {
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  pcre2_code* code =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                    PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &error_code, &error_offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error_code, message, sizeof(message));
    return Status::DataLoss(where + ": regex '" + std::string(pattern) + "' does not compile at offset " +
                            std::to_string(error_offset) + ": " + reinterpret_cast<char*>(message));
  }
  // JIT makes matching several times faster; without it (a PCRE2 built
  // without JIT) the interpreter gives the same matches.
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  return std::unique_ptr<Regex>(new Regex(code));
}

Regex::~Regex() { pcre2_code_free(Code(code_)); }

std::vector<std::pair<size_t, size_t>> Regex::FindAll(std::string_view text) const {
  std::vector<std::pair<size_t, size_t>> matches;
  pcre2_match_data* data = pcre2_match_data_create_from_pattern(Code(code_), nullptr);
  if (data == nullptr) return matches;
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t start = 0;
  while (start < text.size()) {
    const int rc = pcre2_match(Code(code_), subject, text.size(), start, 0, data, nullptr);
    // No match, or a resource limit: what is left becomes one unmatched gap.
    if (rc < 0) break;
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data);
    const size_t begin = ovector[0];
    const size_t end = ovector[1];
    if (end > begin) {
      matches.emplace_back(begin, end);
      start = end;
    } else {
      // An empty match splits nothing; step over one character.
      start = begin + Utf8CharLength(text, begin);
    }
  }
  pcre2_match_data_free(data);
  return matches;
}

}  // namespace baton
