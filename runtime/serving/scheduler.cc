#include "runtime/serving/scheduler.h"

#include <algorithm>
#include <span>
#include <string>
#include <utility>

namespace baton {
namespace {

constexpr int kDefaultMaxBatchTokens = 2048;

}  // namespace

Scheduler::Scheduler(ModelRunner& runner, const Tokenizer* tokenizer, KvBlockManager& blocks, SchedulerOptions options)
    : runner_(runner), tokenizer_(tokenizer), blocks_(blocks), options_(options) {
  if (options_.micro_batches <= 0) options_.micro_batches = std::max(1, runner.preferred_in_flight());
  if (options_.max_batch_tokens <= 0) options_.max_batch_tokens = kDefaultMaxBatchTokens;
  options_.run_ahead = options_.run_ahead && runner.can_run_ahead();
  slots_.resize(static_cast<size_t>(options_.micro_batches));
}

Scheduler::~Scheduler() {
  for (auto& [id, s] : sequences_) blocks_.Release(s->blocks);
}

Status Scheduler::Validate(const GenerationRequest& r) const {
  const ModelConfig& c = runner_.config();
  if (r.prompt_ids.empty()) return Status::InvalidArgument("prompt is empty: give at least one token");
  for (size_t i = 0; i < r.prompt_ids.size(); ++i) {
    if (r.prompt_ids[i] < 0 || r.prompt_ids[i] >= c.vocab_size) {
      return Status::InvalidArgument("prompt token " + std::to_string(i) + " has id " +
                                     std::to_string(r.prompt_ids[i]) + ", outside the vocabulary [0, " +
                                     std::to_string(c.vocab_size) + ")");
    }
  }
  if (r.max_new_tokens < 0) {
    return Status::InvalidArgument("max_new_tokens must be >= 0 (got " + std::to_string(r.max_new_tokens) + ")");
  }
  const int64_t total = static_cast<int64_t>(r.prompt_ids.size()) + r.max_new_tokens;
  if (total > c.max_positions) {
    return Status::InvalidArgument("prompt (" + std::to_string(r.prompt_ids.size()) + " tokens) + max_new_tokens (" +
                                   std::to_string(r.max_new_tokens) + ") exceeds the model's context of " +
                                   std::to_string(c.max_positions) + " tokens");
  }
  // Alone in the cache a request always fits, so preemption can always let
  // the oldest one finish.
  if (blocks_.BlocksFor(static_cast<int>(total)) > blocks_.num_blocks()) {
    return Status::InvalidArgument("request of " + std::to_string(total) + " tokens does not fit the KV cache (" +
                                   std::to_string(blocks_.num_blocks() * blocks_.block_size()) + " tokens)");
  }
  BATON_RETURN_IF_ERROR(r.sampling.Validate());
  if (r.logprobs < 0 || r.logprobs > kMaxLogprobs) {
    return Status::InvalidArgument("logprobs must be in [0, " + std::to_string(kMaxLogprobs) + "] (got " +
                                   std::to_string(r.logprobs) + ")");
  }
  if (!r.stop.empty() && tokenizer_ == nullptr) {
    return Status::InvalidArgument("stop strings need a tokenizer, and the model has none");
  }
  return ValidateStopStrings(r.stop);
}

void Scheduler::Add(RequestId id, GenerationRequest request, RequestSink sink, Clock::time_point accepted) {
  auto s = std::make_unique<Sequence>(id, std::move(request), std::move(sink), tokenizer_, accepted);
  if (s->request.max_new_tokens == 0) {
    s->End(FinishReason::kLength);
    return;
  }
  s->seq_id = next_seq_id_++;
  waiting_.push_back(s.get());
  sequences_.emplace(id, std::move(s));
}

bool Scheduler::Cancel(RequestId id) {
  auto it = sequences_.find(id);
  if (it == sequences_.end()) return false;
  Finish(*it->second, FinishReason::kCancelled);
  return true;
}

Status Scheduler::Step() {
  for (size_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i].steps.empty()) BATON_RETURN_IF_ERROR(PlanAndSubmit(static_cast<int>(i)));
  }
  for (size_t i = 0; options_.run_ahead && i < slots_.size(); ++i) {
    if (slots_[i].steps.size() == 1 && CanRunAhead(slots_[i]))
      BATON_RETURN_IF_ERROR(SubmitRunAhead(static_cast<int>(i)));
  }
  if (in_flight_.empty()) {
    // Only an empty scheduler has nothing to run: a request alone always
    // fits the cache (Validate), and preemption frees it for the oldest.
    if (!sequences_.empty()) return Status::Internal("scheduler stalled with requests queued");
    return Status::Ok();
  }
  const int slot = in_flight_.front();
  in_flight_.pop_front();
  BATON_ASSIGN_OR_RETURN(StepOutput out, runner_.Collect());
  ++steps_;
  return AcceptStep(slot, out);
}

Status Scheduler::DrainInFlight() {
  while (!in_flight_.empty()) {
    slots_[in_flight_.front()].steps.pop_front();
    in_flight_.pop_front();
    BATON_RETURN_IF_ERROR(runner_.Collect().status());
  }
  return Status::Ok();
}

void Scheduler::FailAll(const Status& error) {
  while (!sequences_.empty()) Finish(*sequences_.begin()->second, FinishReason::kError, error);
  in_flight_.clear();
  for (Slot& slot : slots_) slot.steps.clear();
}

Status Scheduler::AcceptStep(int slot_index, const StepOutput& out) {
  Slot& slot = slots_[slot_index];
  const std::vector<Slot::Entry> entries = std::move(slot.steps.front());
  slot.steps.pop_front();
  if (out.tokens.size() != entries.size()) {
    return Status::Internal("step returned " + std::to_string(out.tokens.size()) + " tokens for " +
                            std::to_string(entries.size()) + " sequences");
  }
  const bool with_logprobs = out.logprobs.size() == entries.size();
  for (size_t i = 0; i < entries.size(); ++i) {
    const Slot::Entry& e = entries[i];
    if (!e.samples) continue;  // a prompt chunk before the last
    auto it = sequences_.find(e.id);
    // Cancelled or preempted since the step was submitted: not its token.
    if (it == sequences_.end() || it->second->life != e.life) continue;
    Sequence& s = *it->second;
    const TokenLogprobs* lp = with_logprobs && s.request.logprobs > 0 ? &out.logprobs[i] : nullptr;
    if (s.Accept(out.tokens[i], lp, runner_.config().eos_token_ids)) Finish(s, s.result.finish_reason);
  }
  return Status::Ok();
}

Status Scheduler::PlanAndSubmit(int slot_index) {
  Slot& slot = slots_[slot_index];
  std::vector<Placement> plan;
  int budget = options_.max_batch_tokens;

  // The slot's sequences: decodes first, then prompt chunks, each oldest
  // first. Growing one may preempt a newer one, even of this slot.
  std::vector<Sequence*> order = slot.members;
  std::stable_sort(order.begin(), order.end(), [](const Sequence* a, const Sequence* b) {
    if ((a->pending() == 1) != (b->pending() == 1)) return a->pending() == 1;
    return a->id < b->id;
  });
  for (Sequence* s : order) {
    if (s->slot != slot_index) continue;  // preempted while planning this step
    const int take = std::min(s->pending(), budget);
    if (take <= 0) continue;
    if (!Grow(*s, s->computed + take, plan, budget)) continue;
    plan.push_back({s, take});
    budget -= take;
  }

  // Waiting requests join while budget is left and this slot holds no more
  // than its share of everyone, so the slots stay balanced.
  const size_t share = (sequences_.size() + slots_.size() - 1) / slots_.size();
  while (budget > 0 && !waiting_.empty() && slot.members.size() < share) {
    Sequence& s = *waiting_.front();
    if (!Admit(s)) break;
    waiting_.pop_front();
    s.slot = slot_index;
    slot.members.push_back(&s);
    const int take = std::min(s.pending(), budget);
    Status grown = blocks_.Reserve(s.blocks, s.computed + take);  // Admit checked the whole computation fits
    if (!grown.ok()) return Status::Internal("admission: " + grown.message());
    plan.push_back({&s, take});
    budget -= take;
  }
  if (plan.empty()) return Status::Ok();

  StepPlan step = BuildPlan(slot_index, plan, /*run_ahead=*/false);
  BATON_RETURN_IF_ERROR(runner_.Submit(step));
  in_flight_.push_back(slot_index);
  if (options_.prefix_caching) {
    // Submitted: later steps reading these blocks reach every stage after
    // this one, so the blocks may be shared from now on.
    for (const Placement& p : plan) {
      blocks_.PublishFullBlocks(p.seq->blocks, std::span(p.seq->tokens).first(static_cast<size_t>(p.seq->computed)));
    }
  }
  return Status::Ok();
}

// Whether the slot's step in flight can be followed at once by the next
// decode step of the same sequences (SchedulerOptions::run_ahead).
bool Scheduler::CanRunAhead(const Slot& slot) const {
  if (!waiting_.empty()) return false;
  const std::vector<Slot::Entry>& step = slot.steps.front();
  if (step.empty() || step.size() != slot.members.size()) return false;
  for (const Slot::Entry& e : step) {
    auto it = sequences_.find(e.id);
    if (!e.samples || it == sequences_.end() || it->second->life != e.life) return false;
    const Sequence& s = *it->second;
    // The step in flight computes the last known token, and its sample and
    // the run-ahead one must both be wanted.
    if (s.pending() != 0) return false;
    if (s.num_generated() + 2 > s.request.max_new_tokens) return false;
  }
  return true;
}

// The slot's sequences, in the order of its step in flight, one token each:
// the ones that step samples (StepPlan::continues_previous).
Status Scheduler::SubmitRunAhead(int slot_index) {
  Slot& slot = slots_[slot_index];
  std::vector<Placement> plan;
  for (const Slot::Entry& e : slot.steps.front()) {
    Sequence& s = *sequences_.at(e.id);
    // Optional work: it preempts nobody.
    if (!blocks_.Reserve(s.blocks, s.computed + 1).ok()) return Status::Ok();
    plan.push_back({&s, 1});
  }
  StepPlan step = BuildPlan(slot_index, plan, /*run_ahead=*/true);
  BATON_RETURN_IF_ERROR(runner_.Submit(step));
  in_flight_.push_back(slot_index);
  return Status::Ok();
}

StepPlan Scheduler::BuildPlan(int slot_index, const std::vector<Placement>& placements, bool run_ahead) {
  Slot& slot = slots_[slot_index];
  StepPlan plan;
  plan.block_size = blocks_.block_size();
  plan.micro_batch = slot_index;
  plan.continues_previous = run_ahead;
  plan.released_seqs = std::move(released_);
  released_.clear();
  std::vector<Slot::Entry>& entries = slot.steps.emplace_back();
  for (const Placement& p : placements) {
    Sequence& s = *p.seq;
    s.MarkScheduled();
    SequenceStep step;
    step.seq_id = s.seq_id;
    step.num_new_tokens = p.take;
    if (run_ahead) {
      plan.token_ids.push_back(0);  // the runner's to fill in
    } else {
      plan.token_ids.insert(plan.token_ids.end(), s.tokens.begin() + s.computed,
                            s.tokens.begin() + s.computed + p.take);
    }
    s.computed += p.take;
    step.context_len = s.computed;
    step.block_table = s.blocks;
    step.sample = run_ahead || s.pending() == 0;
    if (!s.registered) {
      // The sampler starts with the sequence's first step, whatever chunk
      // it is: it must see every token for the repetition penalty. After a
      // preemption it skips the draws the old sampler made.
      step.has_sampling = true;
      step.sampling = s.request.sampling;
      step.logprobs = s.request.logprobs > 0 ? s.request.logprobs : -1;
      step.sampler_draws_done = s.num_generated();
      s.registered = true;
    }
    plan.seqs.push_back(std::move(step));
    entries.push_back({s.id, s.life, plan.seqs.back().sample});
  }
  return plan;
}

// Makes room for `num_tokens` of `s`, preempting the newest running
// sequences while blocks are short. False when `s` itself was the newest
// (it is preempted then).
bool Scheduler::Grow(Sequence& s, int num_tokens, std::vector<Placement>& plan, int& budget) {
  while (!blocks_.Reserve(s.blocks, num_tokens).ok()) {
    Sequence* victim = NewestRunning();
    Preempt(*victim, plan, budget);
    if (victim == &s) return false;
  }
  return true;
}

// Takes the cached prefix and checks that the whole (re)computation fits
// the free blocks now, so that a joining sequence does not at once preempt
// the ones already running. On false nothing is held.
bool Scheduler::Admit(Sequence& s) {
  const int len = static_cast<int>(s.tokens.size());
  // The last stage's sampler only sees the tokens of the plans, so a
  // request with a repetition penalty (which needs the whole context)
  // computes its prompt itself.
  const bool reuse = options_.prefix_caching && s.request.sampling.repetition_penalty == 1.0f;
  if (reuse && s.blocks.empty()) {
    // Only whole blocks, and at least one token left to compute: the step
    // must produce the logits of the last token.
    const KvBlockManager::PrefixProbe probe = blocks_.ProbePrefix(s.tokens, len - 1);
    const int need = blocks_.BlocksFor(len) - probe.tokens / blocks_.block_size();
    if (need > blocks_.num_free_blocks() - probe.unreferenced_blocks) return false;
    s.computed = blocks_.MatchPrefix(s.tokens, len - 1, s.blocks);
  } else if (blocks_.BlocksFor(len) - static_cast<int>(s.blocks.size()) > blocks_.num_free_blocks()) {
    return false;
  }
  if (!s.admitted_once) {
    s.admitted_once = true;
    s.result.cached_prompt_tokens = s.computed;
  }
  return true;
}

Sequence* Scheduler::NewestRunning() {
  for (auto it = sequences_.rbegin(); it != sequences_.rend(); ++it) {
    if (it->second->slot >= 0) return it->second.get();
  }
  return nullptr;
}

void Scheduler::Preempt(Sequence& s, std::vector<Placement>& plan, int& budget) {
  for (auto it = plan.begin(); it != plan.end(); ++it) {
    if (it->seq == &s) {
      budget += it->take;
      plan.erase(it);
      break;
    }
  }
  Leave(s);
  // Recomputed later from scratch (or from the prefix cache) under a new
  // id; results of its steps in flight are ignored.
  s.computed = 0;
  s.seq_id = next_seq_id_++;
  ++s.life;
  waiting_.push_front(&s);
  ++preemptions_;
}

void Scheduler::Leave(Sequence& s) {
  blocks_.Release(s.blocks);
  if (s.registered) released_.push_back(s.seq_id);
  s.registered = false;
  if (s.slot >= 0) {
    std::erase(slots_[s.slot].members, &s);
    s.slot = -1;
  } else {
    std::erase(waiting_, &s);
  }
}

void Scheduler::Finish(Sequence& s, FinishReason reason, const Status& error) {
  Leave(s);
  s.End(reason, error);
  sequences_.erase(s.id);
}

}  // namespace baton
