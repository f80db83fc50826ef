// Pre-tokenizers cut normalized text into the "words" the BPE model encodes
// one at a time (and may rewrite them: ByteLevel maps bytes to its
// printable alphabet, Metaspace turns spaces into "▁").
// Immutable after construction; safe to share between threads.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "runtime/core/status.h"
#include "runtime/tokenizer/json_fields.h"

namespace baton {

struct PreToken {
  std::string text;
  // Whether this piece begins at the start of the input text. Metaspace's
  // prepend_scheme "first" adds "▁" only to such a piece.
  bool at_text_start = false;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces `pieces` by their splits, in order; empty pieces are dropped.
  virtual void Split(std::vector<PreToken>* pieces) const = 0;
};

// Builds the pre-tokenizer described at `at`; null JSON gives nullptr (none).
// Types: ByteLevel, Split, Metaspace, Digits, Sequence. Others are Unimplemented.
StatusOr<std::unique_ptr<PreTokenizer>> PreTokenizerFromJson(const nlohmann::json& j, const JsonPath& at);

}  // namespace baton
