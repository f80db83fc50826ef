// Fine-tuning data: a plain text file, or JSONL with {"text": ...} or
// pre-tokenized {"input_ids": [...]} per line, turned into one token stream
// (documents concatenated in file order) and packed into fixed-length
// sequences (the tail that does not fill one is dropped, as transformers'
// run_clm group_texts does).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/core/status.h"
#include "runtime/tokenizer/tokenizer.h"
#include "runtime/training/training_model.h"

namespace baton {

// JSONL when the file name ends in .jsonl or its first non-blank character
// is '{'; plain text otherwise. `tokenizer` may be null only if every line
// carries input_ids. Errors name the file and line.
StatusOr<std::vector<int32_t>> LoadTrainingTokens(const std::string& path, const Tokenizer* tokenizer);

// Consecutive seq_len-token sequences of `tokens`.
std::vector<std::vector<int32_t>> PackSequences(const std::vector<int32_t>& tokens, int seq_len);

// Hands out batches of `batch_size` sequences for step 0, 1, ...: in file
// order with no shuffle, else in an order shuffled with `seed`, reshuffled
// every epoch (seed + epoch). Labels equal the inputs.
class SequenceSampler {
 public:
  SequenceSampler(std::vector<std::vector<int32_t>> sequences, bool shuffle, uint64_t seed);
  TrainBatch Batch(int64_t step, int batch_size) const;
  size_t size() const { return sequences_.size(); }

 private:
  // Index into sequences_ of the i-th sequence of the whole (multi-epoch) stream.
  size_t At(int64_t i) const;
  std::vector<std::vector<int32_t>> sequences_;
  bool shuffle_;
  uint64_t seed_;
};

}  // namespace baton
