// StepPlan: one forward step over a ragged batch, as the scheduler decides it
// and as it travels with a micro-batch through the pipeline stages.
//
// The batch is flat: the new tokens of every sequence, back to back, with
// no padding. Sequence s contributes num_new_tokens tokens at positions
// [context_len - num_new_tokens, context_len): a prefill has all of its
// prompt new, a decode step one token. A prefill chunk or a prompt with a
// cached prefix is anything in between; the same code path runs them all.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/backend/backend.h"
#include "runtime/kv/kv_block_manager.h"
#include "runtime/model/model_config.h"
#include "runtime/sampling/sampling_params.h"

namespace baton {

struct SequenceStep {
  int64_t seq_id = 0;
  int32_t num_new_tokens = 0;
  int32_t context_len = 0;  // tokens in the cache after this step
  BlockTable block_table;   // must cover context_len tokens
  bool all_logits = false;  // logits for every new token (else the last only)
  // Set on a sequence's first step: how the last stage samples it from now
  // on (it keeps the sequence's sampler and token history until released).
  bool has_sampling = false;
  SamplingParams sampling;
  // With has_sampling: -1 = no logprobs; n >= 0 = return the sampled
  // token's logprob and the top-n alternatives with every token.
  int32_t logprobs = -1;
  // With has_sampling: random draws this sequence's sampler already made
  // (a preempted sequence is recomputed under a fresh sampler, which skips
  // these so seeded sampling continues exactly where it stopped). A draw is
  // one Sample() of a non-greedy sampler, i.e. one token sampled by the last
  // stage (steps with sample == false draw nothing); greedy ignores it.
  int32_t sampler_draws_done = 0;
  // False for a prompt chunk that is not the prompt's last (chunked
  // prefill): the last stage adds the chunk's tokens to the sequence's
  // history but samples nothing, returning token -1 and no logprobs for it.
  // Its logit row is still computed (one row: not worth a special path).
  bool sample = true;
};

// Most alternatives SequenceStep::logprobs may ask for (as OpenAI's API).
inline constexpr int32_t kMaxLogprobs = 20;

struct StepPlan {
  int block_size = KvBlockManager::kDefaultBlockSize;
  int32_t micro_batch = 0;  // which micro-batch this step belongs to (for traces)
  std::vector<SequenceStep> seqs;
  std::vector<int32_t> token_ids;  // [N]: the new tokens, sequence after sequence
  // Return the logit rows instead of sampling (`baton logits`).
  bool return_logits = false;
  // The same sequences as the plan submitted just before this one, in the
  // same order, one new token each: the token each samples in that step,
  // which the runner fills in (token_ids hold zeros until then). Only for a
  // runner that can_run_ahead (Scheduler's run-ahead).
  bool continues_previous = false;
  // Sequences that finished: the last stage drops their samplers.
  std::vector<int64_t> released_seqs;
  // Telemetry: cumulative compute microseconds of each stage the step has
  // passed so far (each stage appends its own before sending it on).
  std::vector<int64_t> stage_busy_us;

  int num_tokens() const { return static_cast<int>(token_ids.size()); }
  // Rows of the flat batch whose logits are returned, in order.
  std::vector<int32_t> LogitRows() const;
  // Position of each new token.
  std::vector<int32_t> Positions() const;
  // Checks internal consistency (token count, block coverage): a violation
  // here is a scheduler bug, reported as Internal.
  Status Validate() const;
};

// The StepPlan as the backend's attention op and embedding need it, on the
// backend's device.
// Checks a plan against the model before any of it runs (or is sent down a
// pipeline): Validate(), token ids inside the vocabulary, contexts inside the
// model's window, and the sampling fields of registering steps (params
// valid, logprobs in [-1, kMaxLogprobs], sampler_draws_done >= 0).
Status ValidateStepPlan(const StepPlan& plan, const ModelConfig& config);

struct DeviceStepPlan {
  PagedAttentionBatch attention;
  Tensor token_ids;   // [N] I32
  Tensor positions;   // [N] I32
  Tensor logit_rows;  // [R] I32
};

DeviceStepPlan UploadStepPlan(const StepPlan& plan, Backend& backend);

}  // namespace baton
