#include "runtime/tokenizer/added_tokens.h"

#include <algorithm>
#include <limits>

#include "runtime/tokenizer/utf8.h"

namespace baton {
namespace {

// Approximates HF's is_alphanumeric() || '_' without Unicode tables:
// every non-ASCII character that is not whitespace counts as a word character.
bool IsWordCharacter(char32_t c) {
  if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  return c != kInvalidCodePoint && !IsUnicodeWhitespace(c);
}

// The character that ends text[0, end), or kInvalidCodePoint if none.
char32_t CharBefore(std::string_view text, size_t end) {
  if (end == 0) return kInvalidCodePoint;
  size_t start = end - 1;
  while (start > 0 && end - start < 4 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
  size_t pos = start;
  const char32_t c = DecodeUtf8(text, &pos);
  return pos == end ? c : kInvalidCodePoint;
}

char32_t CharAt(std::string_view text, size_t pos) {
  if (pos >= text.size()) return kInvalidCodePoint;
  return DecodeUtf8(text, &pos);
}

// Start of the whitespace run that ends at `end` (not before `limit`).
size_t SkipWhitespaceBackward(std::string_view text, size_t end, size_t limit) {
  while (end > limit) {
    const char32_t c = CharBefore(text, end);
    if (c == kInvalidCodePoint || !IsUnicodeWhitespace(c)) break;
    size_t length = 1;
    while (length < end && (static_cast<unsigned char>(text[end - length]) & 0xC0) == 0x80) ++length;
    if (end - length < limit) break;
    end -= length;
  }
  return end;
}

size_t SkipWhitespaceForward(std::string_view text, size_t pos) {
  while (pos < text.size()) {
    size_t next = pos;
    const char32_t c = DecodeUtf8(text, &next);
    if (c == kInvalidCodePoint || !IsUnicodeWhitespace(c)) break;
    pos = next;
  }
  return pos;
}

}  // namespace

StatusOr<AddedTokens> AddedTokens::FromJson(const nlohmann::json& added_tokens, const JsonPath& at,
                                            const Normalizer* normalizer) {
  AddedTokens result;
  if (added_tokens.is_null()) return result;
  if (!added_tokens.is_array()) return Status::DataLoss(at.ToString() + " must be an array");
  for (size_t i = 0; i < added_tokens.size(); ++i) {
    const nlohmann::json& t = added_tokens[i];
    const JsonPath item = at.Index(i);
    AddedToken token;
    BATON_ASSIGN_OR_RETURN(int64_t id, GetInt(t, "id", item));
    if (id < 0 || id > std::numeric_limits<int32_t>::max() / 2) {
      return Status::DataLoss(item.Field("id").ToString() + " " + std::to_string(id) + " is out of range");
    }
    token.id = static_cast<int32_t>(id);
    BATON_ASSIGN_OR_RETURN(token.content, GetString(t, "content", item));
    if (token.content.empty()) return Status::DataLoss(item.Field("content").ToString() + " is empty");
    BATON_ASSIGN_OR_RETURN(token.single_word, GetBool(t, "single_word", false, item));
    BATON_ASSIGN_OR_RETURN(token.lstrip, GetBool(t, "lstrip", false, item));
    BATON_ASSIGN_OR_RETURN(token.rstrip, GetBool(t, "rstrip", false, item));
    BATON_ASSIGN_OR_RETURN(token.normalized, GetBool(t, "normalized", false, item));
    BATON_ASSIGN_OR_RETURN(token.special, GetBool(t, "special", false, item));
    result.tokens_.push_back(std::move(token));
  }
  for (size_t i = 0; i < result.tokens_.size(); ++i) {
    const AddedToken& token = result.tokens_[i];
    result.index_by_id_[token.id] = i;
    result.id_by_content_[token.content] = token.id;
    result.id_limit_ = std::max(result.id_limit_, token.id + 1);
    std::string text = token.content;
    if (token.normalized && normalizer != nullptr) text = normalizer->Normalize(text);
    if (text.empty()) continue;
    Matcher& m = token.normalized ? result.normalized_matcher_ : result.raw_matcher_;
    m.by_first_byte[static_cast<unsigned char>(text[0])].push_back({std::move(text), i});
    m.empty = false;
  }
  for (Matcher* m : {&result.raw_matcher_, &result.normalized_matcher_}) {
    for (auto& entries : m->by_first_byte) {
      std::stable_sort(entries.begin(), entries.end(),
                       [](const Matcher::Entry& a, const Matcher::Entry& b) { return a.text.size() > b.text.size(); });
    }
  }
  return result;
}

std::vector<AddedTokens::Segment> AddedTokens::Split(std::string_view text, bool normalized) const {
  std::vector<Segment> segments;
  const Matcher& m = matcher(normalized);
  size_t done = 0;  // end of the last emitted segment
  if (!m.empty) {
    size_t pos = 0;
    while (pos < text.size()) {
      const Matcher::Entry* hit = nullptr;
      for (const Matcher::Entry& e : m.by_first_byte[static_cast<unsigned char>(text[pos])]) {
        if (text.compare(pos, e.text.size(), e.text) == 0) {
          hit = &e;
          break;
        }
      }
      if (hit == nullptr) {
        ++pos;
        continue;
      }
      const AddedToken& token = tokens_[hit->token_index];
      size_t begin = pos;
      size_t end = pos + hit->text.size();
      pos = end;  // like HF's matcher, a rejected match still consumes its text
      if (token.single_word && (IsWordCharacter(CharBefore(text, begin)) || IsWordCharacter(CharAt(text, end)))) {
        continue;
      }
      begin = std::max(begin, done);
      if (token.lstrip) begin = SkipWhitespaceBackward(text, begin, done);
      if (token.rstrip) end = SkipWhitespaceForward(text, end);
      if (begin > done) segments.push_back({done, begin, -1});
      segments.push_back({begin, end, token.id});
      done = end;
      pos = std::max(pos, end);
    }
  }
  if (done < text.size()) segments.push_back({done, text.size(), -1});
  return segments;
}

const AddedToken* AddedTokens::FindById(int32_t id) const {
  auto it = index_by_id_.find(id);
  return it == index_by_id_.end() ? nullptr : &tokens_[it->second];
}

std::optional<int32_t> AddedTokens::FindByContent(std::string_view content) const {
  auto it = id_by_content_.find(content);
  if (it == id_by_content_.end()) return std::nullopt;
  return it->second;
}

}  // namespace baton
