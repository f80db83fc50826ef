// Unicode Normalization Form C (canonical decomposition, then canonical
// composition), for the NFC normalizer that Qwen2's tokenizer.json names.
// Bytes that are not valid UTF-8 pass through unchanged.
#pragma once

#include <string>
#include <string_view>

namespace baton {

std::string ToNfc(std::string_view text);

}  // namespace baton
