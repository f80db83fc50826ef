// Scheduler: continuous (iteration-level) batching of generation requests
// over a ModelRunner. The one scheduling implementation: Generator runs a
// batch of requests through it, Engine a stream of them.
//
// - Running sequences are dealt over `micro_batches` slots; each slot is one
//   ragged forward step in flight at a time, so with M slots up to M steps
//   are in flight (a pipeline keeps every stage busy). When a slot's step
//   comes back its sequences accept their tokens, finished ones leave,
//   waiting ones join, and the slot goes round again.
// - A step holds at most `max_batch_tokens` tokens: the slot's decode
//   tokens first, then prompt chunks (chunked prefill). A chunk before a
//   prompt's last samples nothing (SequenceStep::sample = false), so seeded
//   sampling gives the same tokens however the prompt was cut.
// - KV blocks are taken as sequences grow. When none are left, the newest
//   running request is preempted: its blocks are freed, it goes back to the
//   front of the queue, and later its prompt and generated tokens are
//   recomputed under a fresh sampler that skips the draws already made.
//   A waiting request joins only while its whole (re)computation fits the
//   free blocks.
// - Prefix caching: a joining sequence takes the longest cached prefix of
//   its tokens (whole blocks, at least one token left to compute), and the
//   full blocks of every submitted step are published for later prompts.
//   Requests with a repetition penalty do not reuse blocks: the last stage's
//   sampler sees only the tokens its plans carry, and the penalty needs all.
// - Run-ahead (SchedulerOptions::run_ahead): where the runner can feed a step
//   the tokens of the step before it on the device, a slot's next decode
//   step is submitted while its current one still runs, so the GPU does not
//   idle while the host accepts tokens and plans.
//
// Validation is the caller's job (Validate) before Add. Not thread-safe:
// one thread drives a Scheduler (Engine adds the thread-safe front).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <vector>

#include "runtime/kv/kv_block_manager.h"
#include "runtime/serving/model_runner.h"
#include "runtime/serving/request_event.h"
#include "runtime/serving/sequence.h"
#include "runtime/tokenizer/tokenizer.h"

namespace baton {

struct SchedulerOptions {
  int micro_batches = 0;        // slots (steps in flight); <= 0: runner.preferred_in_flight()
  int max_batch_tokens = 2048;  // tokens per step (decode + prefill chunks); <= 0: 2048
  bool prefix_caching = true;
  // Submit a slot's next decode step before its current one returns, when
  // the runner can feed it the tokens that one samples
  // (ModelRunner::can_run_ahead): the host's work between steps then
  // overlaps the device's. Only while nobody waits to join, and for a slot
  // whose every sequence is in its step in flight, has two or more tokens
  // to go and gets a block without preempting anyone. A sequence that ends
  // on the token of the step before (EOS, stop string) drops its run-ahead
  // token.
  bool run_ahead = true;
};

class Scheduler {
 public:
  using RequestId = uint64_t;
  using Clock = Sequence::Clock;

  // `tokenizer` may be null (then text stays empty and stop strings are
  // rejected).
  Scheduler(ModelRunner& runner, const Tokenizer* tokenizer, KvBlockManager& blocks, SchedulerOptions options = {});
  ~Scheduler();

  // Checks a request against the model and the cache; InvalidArgument
  // naming the field. Reads only what never changes, so any thread may call
  // it while another drives the scheduler.
  Status Validate(const GenerationRequest& request) const;

  // Queues a validated request; `id` must be new and larger than earlier
  // ones (the newest running request is the one preempted). Its sink gets token
  // events and exactly one final event (at once when max_new_tokens is 0).
  void Add(RequestId id, GenerationRequest request, RequestSink sink, Clock::time_point accepted = Clock::now());
  // Ends the request with kCancelled now and frees its blocks; results of
  // its steps still in flight are dropped. False if the id is unknown.
  bool Cancel(RequestId id);

  // One iteration: submits a step for every slot not in flight that has
  // work and a run-ahead step where it may, then collects the oldest step
  // in flight and accepts its tokens.
  // A runner error is returned as is; the scheduler is then to be failed
  // (FailAll).
  Status Step();
  // Collects every step in flight and drops the results (a clean stop
  // leaves nothing in the runner).
  Status DrainInFlight();
  // Ends every request with kError carrying `error` and frees all blocks.
  // Steps in flight are forgotten (the runner is broken or being dropped).
  void FailAll(const Status& error);

  bool Idle() const { return sequences_.empty() && in_flight_.empty(); }
  int num_running() const { return static_cast<int>(sequences_.size() - waiting_.size()); }
  int num_waiting() const { return static_cast<int>(waiting_.size()); }
  int64_t preemptions() const { return preemptions_; }
  int64_t steps() const { return steps_; }
  void ResetStats() { preemptions_ = steps_ = 0; }
  int micro_batches() const { return static_cast<int>(slots_.size()); }
  const SchedulerOptions& options() const { return options_; }

 private:
  struct Slot {
    std::vector<Sequence*> members;  // running here, in joining order
    // Per sequence of a step in flight: who and whether its sampled token
    // counts.
    struct Entry {
      RequestId id;
      int life;
      bool samples;
    };
    // The slot's steps in flight, oldest first: one, or two when the
    // newer one runs ahead (SubmitRunAhead).
    std::deque<std::vector<Entry>> steps;
  };
  struct Placement {
    Sequence* seq;
    int take;  // new tokens in this step
  };

  Status PlanAndSubmit(int slot);
  Status SubmitRunAhead(int slot);
  bool CanRunAhead(const Slot& slot) const;
  bool Grow(Sequence& s, int num_tokens, std::vector<Placement>& plan, int& budget);
  bool Admit(Sequence& s);
  void Preempt(Sequence& s, std::vector<Placement>& plan, int& budget);
  Sequence* NewestRunning();
  void Leave(Sequence& s);  // out of its slot or the queue; blocks and sampler freed
  void Finish(Sequence& s, FinishReason reason, const Status& error = Status::Ok());
  StepPlan BuildPlan(int slot, const std::vector<Placement>& placements, bool run_ahead);
  Status AcceptStep(int slot, const StepOutput& out);

  ModelRunner& runner_;
  const Tokenizer* tokenizer_;
  KvBlockManager& blocks_;
  SchedulerOptions options_;

  std::map<RequestId, std::unique_ptr<Sequence>> sequences_;  // waiting and running, by arrival
  std::deque<Sequence*> waiting_;                             // preempted ones at the front
  std::vector<Slot> slots_;
  std::deque<int> in_flight_;  // slots with a step submitted, in submission order
  int64_t next_seq_id_ = 0;
  std::vector<int64_t> released_;  // seq ids whose samplers the last stage may drop
  int64_t preemptions_ = 0;
  int64_t steps_ = 0;
};

}  // namespace baton
