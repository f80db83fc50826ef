#include "runtime/tokenizer/byte_level.h"

#include <array>

#include "runtime/tokenizer/utf8.h"

namespace baton {
namespace {

bool StandsForItself(int b) { return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF); }

struct ByteLevelTables {
  std::array<std::string, 256> byte_to_text;
  // Indexed by code point; every mapped code point is below 0x144.
  std::array<int, 0x144> code_point_to_byte;

  ByteLevelTables() {
    code_point_to_byte.fill(-1);
    char32_t next_extra = 0x100;
    for (int b = 0; b < 256; ++b) {
      const char32_t c = StandsForItself(b) ? static_cast<char32_t>(b) : next_extra++;
      AppendUtf8(c, &byte_to_text[b]);
      code_point_to_byte[c] = b;
    }
  }
};

const ByteLevelTables& Tables() {
  static const ByteLevelTables tables;
  return tables;
}

}  // namespace

void BytesToByteLevel(std::string_view bytes, std::string* out) {
  const ByteLevelTables& t = Tables();
  for (unsigned char b : bytes) out->append(t.byte_to_text[b]);
}

bool ByteLevelToBytes(std::string_view text, std::string* out) {
  const ByteLevelTables& t = Tables();
  std::string bytes;
  bytes.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    const char32_t c = DecodeUtf8(text, &pos);
    if (c == kInvalidCodePoint || c >= t.code_point_to_byte.size() || t.code_point_to_byte[c] < 0) {
      return false;
    }
    bytes.push_back(static_cast<char>(t.code_point_to_byte[c]));
  }
  out->append(bytes);
  return true;
}

}  // namespace baton
