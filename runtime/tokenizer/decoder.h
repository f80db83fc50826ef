// Decoders turn the token strings of some ids back into text (ByteLevel maps
// its alphabet back to bytes, Metaspace and Replace turn "▁" into spaces,
// ByteFallback joins <0xXX> tokens into characters, ...). As in HF each one
// rewrites a list of strings, and the final text is their concatenation.
// Immutable after construction; thread-safe.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "runtime/core/status.h"
#include "runtime/tokenizer/json_fields.h"

namespace baton {

// What a decoder may need to know about the whole sequence when it decodes
// only a window of it (StreamDecoder decodes windows).
struct DecodeState {
  // tokens[0] is the first token of the whole sequence: Metaspace drops its
  // leading "▁" and Strip after Fuse strips the sequence's first space.
  bool at_sequence_start = true;
  // A Fuse (or ByteLevel) already joined the tokens into one string.
  bool fused = false;
};

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void DecodeChain(std::vector<std::string>* tokens, DecodeState* state) const = 0;
};

// Builds the decoder described at `at`; null JSON gives nullptr (tokens are
// then joined with spaces, as HF does). Types: ByteLevel, ByteFallback,
// Fuse, Metaspace, Replace, Strip, Sequence. Others are Unimplemented.
StatusOr<std::unique_ptr<Decoder>> DecoderFromJson(const nlohmann::json& j, const JsonPath& at);

}  // namespace baton
