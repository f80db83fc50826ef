// The GPT-2 byte <-> unicode map of byte-level BPE.
//
// Byte-level tokenizers (GPT-2, Llama-3, Qwen2) never see raw bytes: each
// byte is first replaced by a printable character (printable ASCII and most
// of Latin-1 stand for themselves, the other 68 bytes become U+0100..U+0143),
// so that every vocab entry is a valid, visible string.
#pragma once

#include <string>
#include <string_view>

namespace baton {

// Appends the byte-level characters standing for `bytes`.
void BytesToByteLevel(std::string_view bytes, std::string* out);

// Turns byte-level characters back into the bytes they stand for. Returns
// false (and leaves *out as it was) if some character is not in the map.
bool ByteLevelToBytes(std::string_view text, std::string* out);

}  // namespace baton
