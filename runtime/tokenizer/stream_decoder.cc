#include "runtime/tokenizer/stream_decoder.h"

#include "runtime/tokenizer/tokenizer.h"
#include "runtime/tokenizer/utf8.h"

namespace baton {

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, bool skip_special_tokens)
    : tokenizer_(tokenizer), skip_special_tokens_(skip_special_tokens) {}

std::string StreamDecoder::Push(int32_t id) {
  if (tokenizer_.SkippedInDecode(id, skip_special_tokens_)) return std::string();
  pending_.push_back(id);
  std::string text = tokenizer_.DecodeWindow(pending_, skip_special_tokens_, at_sequence_start_);
  // Decoders turn an incomplete character into U+FFFD; its remaining bytes
  // may still come. Empty text waits too: at the sequence start a lone "▁"
  // decodes to nothing but changes how the next token decodes.
  if (text.empty() || std::string_view(text).ends_with(kReplacementCharacter)) return std::string();
  pending_.clear();
  at_sequence_start_ = false;
  return text;
}

std::string StreamDecoder::Flush() {
  std::string text = tokenizer_.DecodeWindow(pending_, skip_special_tokens_, at_sequence_start_);
  pending_.clear();
  at_sequence_start_ = true;
  return text;
}

}  // namespace baton
