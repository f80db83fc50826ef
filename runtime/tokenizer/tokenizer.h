// Tokenizer: the Hugging Face tokenizer.json pipeline for BPE models, giving
// the same ids and text as the `tokenizers` library.
//
// Encode: split the input on added tokens, normalize the rest, pre-tokenize
// it into words, BPE-encode each word, then let the post-processor add the
// model's special tokens (Llama's BOS). Decode: ids -> token strings ->
// decoder chain -> text. Input text is bytes; invalid UTF-8 is tolerated.
//
// Supported: model BPE (byte_fallback, unk_token, fuse_unk, ignore_merges,
// continuing_subword_prefix, end_of_word_suffix; merges as "a b" or
// ["a", "b"]); normalizers Sequence, Prepend, Replace, Strip, NFC;
// pre-tokenizers ByteLevel, Split, Metaspace, Digits, Sequence; decoders
// ByteLevel, ByteFallback, Fuse, Metaspace, Replace, Strip, Sequence;
// post-processors TemplateProcessing, ByteLevel, Bert/RobertaProcessing,
// Sequence. Anything else fails to load with Unimplemented, naming it.
//
// Immutable after loading: Encode and Decode may run on many threads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/core/status.h"
#include "runtime/tokenizer/added_tokens.h"
#include "runtime/tokenizer/bpe_model.h"
#include "runtime/tokenizer/decoder.h"
#include "runtime/tokenizer/normalizer.h"
#include "runtime/tokenizer/post_processor.h"
#include "runtime/tokenizer/pre_tokenizer.h"
#include "runtime/tokenizer/stream_decoder.h"

namespace baton {

class Tokenizer {
 public:
  // Loads tokenizer.json. Errors name the file and the field, e.g.
  // "tokenizer.json: model.type 'WordPiece' is not supported (expected BPE)".
  // NotFound if the file cannot be read, DataLoss if it is malformed.
  static StatusOr<std::unique_ptr<Tokenizer>> FromFile(const std::string& path);
  // `source_name` stands for the file in error messages.
  static StatusOr<std::unique_ptr<Tokenizer>> FromJson(const nlohmann::json& j, const std::string& source_name);

  // The ids HF's Tokenizer.encode(text).ids gives; add_special_tokens runs
  // the post-processor (e.g. prepends Llama's BOS).
  std::vector<int32_t> Encode(std::string_view text, bool add_special_tokens = true) const;
  // The text HF's Tokenizer.decode(ids) gives. Ids that are neither in the
  // vocab nor added tokens are skipped.
  std::string Decode(const std::vector<int32_t>& ids, bool skip_special_tokens = true) const;

  // Largest id + 1 over the model vocab and the added tokens.
  int32_t vocab_size() const;
  std::optional<int32_t> TokenToId(std::string_view token) const;
  std::optional<std::string> IdToToken(int32_t id) const;
  // Whether `id` is an added token marked special (skipped by Decode by default).
  bool IsSpecial(int32_t id) const;

 private:
  friend class StreamDecoder;
  Tokenizer() = default;

  // The string of `id`, or null when no token has it.
  const std::string* TokenString(int32_t id) const;
  // Whether Decode leaves `id` out.
  bool SkippedInDecode(int32_t id, bool skip_special_tokens) const;
  // Decodes `ids`, which start the whole sequence or (for StreamDecoder)
  // continue earlier ids whose text was already produced.
  std::string DecodeWindow(const std::vector<int32_t>& ids, bool skip_special_tokens, bool at_sequence_start) const;

  std::unique_ptr<BpeModel> model_;
  AddedTokens added_tokens_;
  std::unique_ptr<Normalizer> normalizer_;         // may be null
  std::unique_ptr<PreTokenizer> pre_tokenizer_;    // may be null
  std::unique_ptr<PostProcessor> post_processor_;  // may be null
  std::unique_ptr<Decoder> decoder_;               // may be null
};

}  // namespace baton
