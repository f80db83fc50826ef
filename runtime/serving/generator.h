// Generator: runs generation requests to completion on a one-stage model,
// as one ragged batch: all prompts prefill together, then every running
// sequence decodes one token per step until it finishes. Requests that do
// not fit the KV cache wait for others to finish.
//
// Validation happens here, before any work: a bad request is an
// InvalidArgument/OutOfRange naming the field, and the batch is not run.
// Thread-compatible: one thread drives a Generator.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "runtime/kv/kv_block_manager.h"
#include "runtime/serving/generation_request.h"
#include "runtime/tokenizer/tokenizer.h"
#include "stages/stage.h"

namespace baton {

// Called as each token is accepted: (request index, token id, new text).
using TokenCallback = std::function<void(size_t request, int32_t token, const std::string& text_delta)>;

class Generator {
 public:
  // `stage` must hold the whole model; `tokenizer` may be null (then text
  // stays empty and stop strings are rejected).
  Generator(Stage& stage, const Tokenizer* tokenizer, KvBlockManager& blocks);

  Status Validate(const GenerationRequest& request) const;
  StatusOr<std::vector<GenerationResult>> Generate(const std::vector<GenerationRequest>& requests,
                                                   const TokenCallback& on_token = nullptr);

 private:
  struct Sequence;
  Status Step(std::vector<Sequence*>& running);

  Stage& stage_;
  const Tokenizer* tokenizer_;
  KvBlockManager& blocks_;
  TokenCallback on_token_;  // set for the duration of Generate
};

}  // namespace baton
