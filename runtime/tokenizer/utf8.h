// UTF-8 helpers for the tokenizer. Input text is treated as bytes that are
// usually, but not always, valid UTF-8: every function here accepts any
// bytes, and an invalid byte counts as a one-byte "character" of its own.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace baton {

// A code point that is not one: DecodeUtf8 returns it for an invalid byte.
inline constexpr char32_t kInvalidCodePoint = 0xFFFFFFFF;
inline constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";  // U+FFFD

// Decodes the character at s[*pos] and moves *pos past it. An invalid or
// truncated sequence yields kInvalidCodePoint and advances one byte.
char32_t DecodeUtf8(std::string_view s, size_t* pos);

// Byte length of the character at s[pos] (1 for an invalid byte).
size_t Utf8CharLength(std::string_view s, size_t pos);

void AppendUtf8(char32_t code_point, std::string* out);

// Rust's String::from_utf8_lossy: each maximal invalid subsequence becomes
// one U+FFFD. Hugging Face decoders end this way, so Decode must too.
std::string Utf8Lossy(std::string_view bytes);

bool IsValidUtf8(std::string_view bytes);

// Rust's char::is_whitespace (Unicode White_Space).
bool IsUnicodeWhitespace(char32_t c);

}  // namespace baton
