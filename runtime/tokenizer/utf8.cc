#include "runtime/tokenizer/utf8.h"

namespace baton {
namespace {

// Length of a well-formed sequence that starts with `lead`, with the range
// its second byte must fall in (Unicode Table 3-7); 0 if `lead` can start none.
struct LeadByte {
  int length;
  unsigned char second_min;
  unsigned char second_max;
};

LeadByte ClassifyLead(unsigned char lead) {
  if (lead < 0x80) return {1, 0, 0};
  if (lead < 0xC2) return {0, 0, 0};
  if (lead < 0xE0) return {2, 0x80, 0xBF};
  if (lead == 0xE0) return {3, 0xA0, 0xBF};
  if (lead == 0xED) return {3, 0x80, 0x9F};  // no surrogates
  if (lead < 0xF0) return {3, 0x80, 0xBF};
  if (lead == 0xF0) return {4, 0x90, 0xBF};
  if (lead < 0xF4) return {4, 0x80, 0xBF};
  if (lead == 0xF4) return {4, 0x80, 0x8F};  // nothing past U+10FFFF
  return {0, 0, 0};
}

bool IsContinuation(unsigned char b) { return (b & 0xC0) == 0x80; }

// How many bytes from s[pos] belong to the longest prefix of a well-formed
// sequence (the "maximal subpart"), and whether that prefix is complete.
size_t ValidPrefixLength(std::string_view s, size_t pos, bool* complete) {
  const auto lead = static_cast<unsigned char>(s[pos]);
  const LeadByte info = ClassifyLead(lead);
  *complete = info.length == 1;
  if (info.length <= 1) return 1;
  size_t n = 1;
  while (n < static_cast<size_t>(info.length) && pos + n < s.size()) {
    const auto b = static_cast<unsigned char>(s[pos + n]);
    const bool ok = n == 1 ? (b >= info.second_min && b <= info.second_max) : IsContinuation(b);
    if (!ok) break;
    ++n;
  }
  *complete = n == static_cast<size_t>(info.length);
  return n;
}

}  // namespace

char32_t DecodeUtf8(std::string_view s, size_t* pos) {
  bool complete = false;
  const size_t n = ValidPrefixLength(s, *pos, &complete);
  if (!complete) {
    *pos += 1;
    return kInvalidCodePoint;
  }
  const auto* p = reinterpret_cast<const unsigned char*>(s.data() + *pos);
  char32_t c;
  switch (n) {
    case 1:
      c = p[0];
      break;
    case 2:
      c = ((p[0] & 0x1Fu) << 6) | (p[1] & 0x3Fu);
      break;
    case 3:
      c = ((p[0] & 0x0Fu) << 12) | ((p[1] & 0x3Fu) << 6) | (p[2] & 0x3Fu);
      break;
    default:
      c = ((p[0] & 0x07u) << 18) | ((p[1] & 0x3Fu) << 12) | ((p[2] & 0x3Fu) << 6) | (p[3] & 0x3Fu);
  }
  *pos += n;
  return c;
}

size_t Utf8CharLength(std::string_view s, size_t pos) {
  bool complete = false;
  const size_t n = ValidPrefixLength(s, pos, &complete);
  return complete ? n : 1;
}

void AppendUtf8(char32_t c, std::string* out) {
  if (c < 0x80) {
    out->push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (c >> 6)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (c >> 12)));
    out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c <= 0x10FFFF) {
    out->push_back(static_cast<char>(0xF0 | (c >> 18)));
    out->push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out->append(kReplacementCharacter);
  }
}

std::string Utf8Lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t pos = 0;
  while (pos < bytes.size()) {
    bool complete = false;
    const size_t n = ValidPrefixLength(bytes, pos, &complete);
    if (complete) {
      out.append(bytes.substr(pos, n));
    } else {
      out.append(kReplacementCharacter);
    }
    pos += n;
  }
  return out;
}

bool IsValidUtf8(std::string_view bytes) {
  size_t pos = 0;
  while (pos < bytes.size()) {
    bool complete = false;
    pos += ValidPrefixLength(bytes, pos, &complete);
    if (!complete) return false;
  }
  return true;
}

bool IsUnicodeWhitespace(char32_t c) {
  if (c >= 0x09 && c <= 0x0D) return true;
  switch (c) {
    case 0x20:
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200A;
  }
}

}  // namespace baton
