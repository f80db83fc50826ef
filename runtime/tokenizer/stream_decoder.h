// StreamDecoder: incremental detokenization for generation. Push ids as the
// sampler produces them and get back only text that is final: a UTF-8
// character split over several tokens (byte-level or <0xXX> tokens) is held
// back until complete, and SentencePiece's leading-space rules apply once,
// at the sequence start. The pieces returned by Push and Flush concatenate
// to Decode(all ids).
//
// Each Push decodes only the ids since the last emitted text, so the cost
// per token stays constant. One caller at a time; the Tokenizer must outlive it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace baton {

class Tokenizer;

class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special_tokens = true);

  // Adds one id; returns the text that became final (often empty).
  std::string Push(int32_t id);
  // Returns whatever is still held back (an incomplete character comes out
  // as U+FFFD, as Decode would give it) and starts over.
  std::string Flush();

 private:
  const Tokenizer& tokenizer_;
  bool skip_special_tokens_;
  std::vector<int32_t> pending_;   // ids whose text is not emitted yet
  bool at_sequence_start_ = true;  // nothing has been emitted yet
};

}  // namespace baton
