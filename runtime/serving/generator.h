// Generator: runs generation requests to completion over a ModelRunner.
//
// Running sequences are split into micro-batches; each micro-batch is one
// ragged forward step (prefill and decode tokens mixed, no padding). Up to
// `micro_batches` steps are in flight at once, so on a pipeline stage j works
// on micro-batch k while stage j-1 works on k+1. When a micro-batch's logits
// come back its sequences sample one token each, finished ones leave and
// waiting requests join it (iteration-level batching), and it goes round
// again. A request joins only when its whole prompt + max_new_tokens fits the
// KV cache, so nobody is preempted.
//
// Validation happens here, before any work: a bad request is an
// InvalidArgument naming the field, and nothing is run.
// Thread-compatible: one thread drives a Generator.
#pragma once

#include <functional>
#include <vector>

#include "runtime/kv/kv_block_manager.h"
#include "runtime/serving/generation_request.h"
#include "runtime/serving/model_runner.h"
#include "runtime/tokenizer/tokenizer.h"

namespace baton {

// Called as each token is accepted: (request index, token id, new text).
using TokenCallback = std::function<void(size_t request, int32_t token, const std::string& text_delta)>;

class Generator {
 public:
  // `tokenizer` may be null (then text stays empty and stop strings are
  // rejected). micro_batches <= 0 takes the runner's preferred_in_flight().
  Generator(ModelRunner& runner, const Tokenizer* tokenizer, KvBlockManager& blocks, int micro_batches = 0);

  Status Validate(const GenerationRequest& request) const;
  int micro_batches() const { return micro_batches_; }
  StatusOr<std::vector<GenerationResult>> Generate(const std::vector<GenerationRequest>& requests,
                                                   const TokenCallback& on_token = nullptr);

 private:
  struct Sequence;
  struct MicroBatch;
  StepPlan PlanStep(const MicroBatch& batch, int32_t index);
  void AcceptToken(Sequence& s, int32_t token);

  ModelRunner& runner_;
  const Tokenizer* tokenizer_;
  KvBlockManager& blocks_;
  int micro_batches_;
  TokenCallback on_token_;         // set for the duration of Generate
  int64_t next_seq_id_ = 0;        // ids stay unique across Generate calls
  std::vector<int64_t> released_;  // finished sequences the last stage still keeps a sampler for
};

}  // namespace baton
