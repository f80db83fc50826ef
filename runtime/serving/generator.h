// Generator: runs a batch of generation requests to completion, through the
// Scheduler (continuous batching over micro-batches, chunked prefill,
// preemption when the KV cache runs out, prefix caching). What the
// `baton generate` CLI and benchmarks use; Engine serves a stream of
// requests with the same Scheduler.
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
#include "runtime/serving/scheduler.h"
#include "runtime/tokenizer/tokenizer.h"

namespace baton {

// Called as each token is accepted: (request index, token id, new text).
using TokenCallback = std::function<void(size_t request, int32_t token, const std::string& text_delta)>;

class Generator {
 public:
  // `tokenizer` may be null (then text stays empty and stop strings are
  // rejected). micro_batches <= 0 takes the runner's preferred_in_flight().
  Generator(ModelRunner& runner, const Tokenizer* tokenizer, KvBlockManager& blocks, int micro_batches = 0);
  Generator(ModelRunner& runner, const Tokenizer* tokenizer, KvBlockManager& blocks, SchedulerOptions options);

  Status Validate(const GenerationRequest& request) const { return scheduler_.Validate(request); }
  int micro_batches() const { return scheduler_.micro_batches(); }
  int64_t preemptions() const { return scheduler_.preemptions(); }
  StatusOr<std::vector<GenerationResult>> Generate(const std::vector<GenerationRequest>& requests,
                                                   const TokenCallback& on_token = nullptr);

 private:
  Scheduler scheduler_;
  uint64_t next_id_ = 0;  // request ids stay unique across Generate calls
};

}  // namespace baton
