// Engine: the serving loop on rank 0. Requests arrive from any thread
// (the gRPC server's); the loop runs on the thread that calls Run() (the
// main thread, the only one that talks MPI) and drives the ModelRunner with
// continuous (iteration-level) batching:
//
// - Up to `micro_batches` steps are in flight, so every pipeline stage has
//   work. When a micro-batch's tokens come back, finished and cancelled
//   sequences leave it, waiting ones join, and it goes round again.
// - A step holds at most `max_batch_tokens` tokens: decode tokens first,
//   then prompt chunks (chunked prefill), so a long prompt never stalls
//   everyone's decode.
// - KV blocks are taken as sequences grow. When none are left, the newest
//   running request is preempted (its blocks freed, its tokens recomputed
//   later) instead of anyone failing.
// - Prefix caching: full prompt blocks are keyed by their tokens and their
//   prefix; a new prompt reuses the longest cached prefix and skips its
//   prefill (Usage::cached_prompt_tokens).
//
// Events are delivered on the loop's thread through each request's sink;
// sinks must not block (queue and return). The scheduling itself is the
// Scheduler's (scheduler.h); Engine adds the thread-safe inbox around it.
// Submit, Cancel, StopAdmission, Stop, Idle and Stats may be called from any
// thread.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "runtime/kv/kv_block_manager.h"
#include "runtime/serving/generation_request.h"
#include "runtime/serving/model_runner.h"
#include "runtime/serving/request_event.h"
#include "runtime/tokenizer/tokenizer.h"

namespace baton {

struct EngineOptions {
  int micro_batches = 0;        // steps in flight; 0 = runner.preferred_in_flight()
  int max_batch_tokens = 2048;  // tokens per step (decode + prefill chunks)
  int max_waiting = 1024;       // queued requests beyond this: ResourceExhausted
  bool prefix_caching = true;
};

struct EngineStats {
  int running = 0;             // admitted, not finished
  int waiting = 0;             // queued or preempted
  double kv_usage = 0;         // blocks held by sequences / all blocks (cached-but-free blocks excluded)
  int64_t prefix_queries = 0;  // prompt blocks looked up in the prefix cache
  int64_t prefix_hits = 0;     // of which were found
  int64_t preemptions = 0;
  int64_t steps = 0;
  // Each stage's cumulative compute seconds (stage order), as the runner
  // last reported them; empty when it does not.
  std::vector<double> stage_busy_seconds;
};

class Engine {
 public:
  using RequestId = uint64_t;

  // `tokenizer` may be null (token ids only).
  Engine(ModelRunner& runner, const Tokenizer* tokenizer, KvBlockManager& blocks, EngineOptions options);
  ~Engine();

  // Checks a request against the model and limits; the error names the
  // field (InvalidArgument).
  Status Validate(const GenerationRequest& request) const;
  // Validates and queues. InvalidArgument (bad field), ResourceExhausted
  // (queue full), Unavailable (draining, stopped or failed). On success the
  // sink will receive exactly one final event.
  StatusOr<RequestId> Submit(GenerationRequest request, RequestSink sink);
  // The request ends with finish reason kCancelled within one iteration and
  // its KV blocks are freed. Unknown or finished ids are ignored.
  void Cancel(RequestId id);

  // Runs the loop on this thread until Stop(), or until the runner fails
  // (returns that error; pending and later-queued requests then end with
  // kError carrying it, and new submissions get Unavailable). When idle it
  // sleeps until a submission, a cancel or Stop() arrives.
  Status Run();
  // Runs `num_requests` dummy greedy requests (prompt_tokens + new_tokens
  // each, shrunk to fit the model and cache) through the model to warm
  // caches and allocations; their output is discarded, and the prefix cache
  // and statistics are reset afterwards. Call on the loop's thread, before
  // Run(). A runner error is returned.
  Status Warmup(int num_requests, int prompt_tokens, int new_tokens);
  // New submissions get Unavailable; queued and running ones continue.
  void StopAdmission();
  // Ends Run() at the next iteration; requests not finished end with
  // kError (Unavailable: "server stopping").
  void Stop();
  bool Idle() const;          // nothing queued or running
  EngineStats Stats() const;  // a consistent snapshot, from any thread
  // As given, with micro_batches resolved (never 0).
  const EngineOptions& options() const { return options_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  EngineOptions options_;
};

}  // namespace baton
