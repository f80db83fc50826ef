// Fine-tuning data: a training file turned into one token stream with a
// label per token, packed into fixed-length sequences, and handed out as
// the global batch of each optimizer step.
//
// Formats (LoadTrainingData):
//  - plain text: the whole file is one document, encoded with the
//    tokenizer's special tokens (Llama's BOS), loss on every token;
//  - JSONL, one example per line (blank lines skipped), each one of
//    {"text": ...}                 loss on every token, as plain text;
//    {"prompt": ..., "completion": ...}   loss only on the completion (and
//        the EOS after it, see LoadTrainingData);
//    {"input_ids": [...], "labels": [...]}  pre-tokenized; "labels" is
//        optional (default: the ids), same length, each an id or -100.
//    Other fields of a line (ids, metadata) are ignored.
// Examples are concatenated in file order without separators, as
// transformers' run_clm does, and packed into seq_len-token sequences whose
// incomplete tail is dropped (run_clm's group_texts); a sequence may start
// in one example and end in the next.
//
// SequenceSampler is immutable after construction: Batch may be called from
// several threads at once.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "runtime/core/status.h"
#include "runtime/tokenizer/tokenizer.h"
#include "runtime/training/lm_head_loss.h"
#include "runtime/training/train_batch.h"

namespace baton {

// labels[i] == ids[i] where the loss counts, kIgnoreIndex where it does not.
// Not shifted: the model shifts (TrainBatch).
struct TokenStream {
  std::vector<int32_t> ids;
  std::vector<int32_t> labels;
};

// Loads `path`: JSONL when the name ends in .jsonl, plain text when it ends
// in .txt, otherwise JSONL iff the first non-blank character is '{'.
// `tokenizer` may be null only if every example is pre-tokenized.
//
// Prompt/completion: the prompt is encoded with special tokens (exactly the
// ids `baton generate --prompt` starts from), the completion without, and
// then `eos_token_id` (the model's first eos_token_ids entry) is appended
// to the completion, with a loss on it, unless the completion already ends
// with it. Without that EOS the model never learns where an answer stops,
// and packed examples would run straight into the next prompt; TRL's
// SFTTrainer appends it for the same reason. {"text"} documents and plain
// text get no EOS, so that they tokenize exactly as run_clm does.
//
// Errors are InvalidArgument naming "file:line" and the field at fault
// (NotFound for a file that cannot be opened); a file without any token is
// an error too.
StatusOr<TokenStream> LoadTrainingData(const std::string& path, const Tokenizer* tokenizer,
                                       std::optional<int32_t> eos_token_id = std::nullopt);

struct TrainSequence {
  std::vector<int32_t> ids, labels;
};

// Consecutive seq_len-token slices of `tokens`; the tail shorter than
// seq_len is dropped. Nothing if seq_len <= 0.
std::vector<TrainSequence> PackSequences(const TokenStream& tokens, int seq_len);

// The sequences of every optimizer step. The sequences form an endless
// stream of epochs: each epoch is every sequence once, in file order when
// !shuffle, else in an order drawn from (seed, epoch), so every epoch is
// reshuffled. A batch is the next batch_size sequences of that stream and
// may cross an epoch boundary.
class SequenceSampler {
 public:
  // All sequences must have the same length (PackSequences makes them so).
  SequenceSampler(std::vector<TrainSequence> sequences, bool shuffle, uint64_t seed);

  // The global batch of optimizer step `step` (sequences
  // [step * batch_size, (step + 1) * batch_size) of the stream): a pure
  // function of (step, batch_size, seed), so a resumed run needs only the
  // step. Empty (num_seqs 0) if there are no sequences or batch_size <= 0.
  TrainBatch Batch(int64_t step, int batch_size) const;
  size_t size() const { return sequences_.size(); }

 private:
  std::vector<TrainSequence> sequences_;
  bool shuffle_;
  uint64_t seed_;
};

// Sequences [first, first + count) of `batch`: a dp rank's share of the
// global batch, or one micro-batch. The range is clamped to the batch, so
// the result may hold fewer than `count` sequences (never reads past it).
TrainBatch SliceBatch(const TrainBatch& batch, int first, int count);

}  // namespace baton
