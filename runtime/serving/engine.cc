#include "runtime/serving/engine.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "runtime/serving/scheduler.h"

namespace baton {
namespace {

// How long an idle loop sleeps before looking again (a submission or Stop
// wakes it at once; this only bounds a missed wake-up).
constexpr auto kIdleWait = std::chrono::milliseconds(50);

}  // namespace

struct Engine::Impl {
  struct Submission {
    RequestId id;
    GenerationRequest request;
    RequestSink sink;
    Scheduler::Clock::time_point accepted;
  };

  Impl(ModelRunner& runner, const Tokenizer* tokenizer, KvBlockManager& blocks, const EngineOptions& options)
      : runner(runner),
        blocks(blocks),
        scheduler(runner, tokenizer, blocks,
                  SchedulerOptions{.micro_batches = options.micro_batches,
                                   .max_batch_tokens = options.max_batch_tokens,
                                   .prefix_caching = options.prefix_caching}) {}

  // Loop thread only.
  void AddAll(std::vector<Submission>& subs) {
    for (Submission& s : subs) scheduler.Add(s.id, std::move(s.request), std::move(s.sink), s.accepted);
    subs.clear();
  }
  // Ends everything, queued or running, with `error` (loop thread).
  void FailEverything(const Status& error) {
    std::vector<Submission> late;
    {
      std::lock_guard<std::mutex> lock(mu);
      late.swap(inbox);
      cancels.clear();
    }
    AddAll(late);
    scheduler.FailAll(error);
    Publish();
  }
  // Copies the loop's numbers for other threads.
  void Publish() {
    std::lock_guard<std::mutex> lock(mu);
    stats.running = scheduler.num_running();
    stats.waiting = scheduler.num_waiting();
    stats.kv_usage = blocks.usage_ratio();
    stats.prefix_queries = blocks.prefix_queries();
    stats.prefix_hits = blocks.prefix_hits();
    stats.preemptions = scheduler.preemptions();
    stats.steps = scheduler.steps();
    stats.stage_busy_seconds = runner.StageBusySeconds();
    scheduler_idle = scheduler.Idle();
  }

  ModelRunner& runner;
  KvBlockManager& blocks;
  Scheduler scheduler;  // touched by the loop's thread only

  mutable std::mutex mu;
  std::condition_variable wake;
  // Guarded by mu.
  std::vector<Submission> inbox;
  std::vector<RequestId> cancels;
  RequestId next_id = 1;
  bool admitting = true;
  bool stopping = false;
  bool loop_running = false;
  Status failure;  // the runner's error once the loop failed
  EngineStats stats;
  bool scheduler_idle = true;
};

Engine::Engine(ModelRunner& runner, const Tokenizer* tokenizer, KvBlockManager& blocks, EngineOptions options)
    : impl_(std::make_unique<Impl>(runner, tokenizer, blocks, options)), options_(options) {
  options_.micro_batches = impl_->scheduler.micro_batches();
  options_.max_batch_tokens = impl_->scheduler.options().max_batch_tokens;
}

Engine::~Engine() {
  // Requests never run (Run() not called, or Submit raced the end) still
  // get their final event.
  impl_->FailEverything(Status::Unavailable("server stopping"));
}

Status Engine::Validate(const GenerationRequest& request) const { return impl_->scheduler.Validate(request); }

StatusOr<Engine::RequestId> Engine::Submit(GenerationRequest request, RequestSink sink) {
  BATON_RETURN_IF_ERROR(Validate(request));
  const auto accepted = Scheduler::Clock::now();
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (!impl_->failure.ok()) return Status::Unavailable("engine failed: " + impl_->failure.ToString());
  if (impl_->stopping || !impl_->admitting)
    return Status::Unavailable("server is shutting down: not accepting requests");
  const size_t waiting = static_cast<size_t>(impl_->stats.waiting) + impl_->inbox.size();
  if (waiting >= static_cast<size_t>(std::max(options_.max_waiting, 0))) {
    return Status::ResourceExhausted("request queue full: " + std::to_string(waiting) +
                                     " requests waiting (max_waiting " + std::to_string(options_.max_waiting) + ")");
  }
  const RequestId id = impl_->next_id++;
  impl_->inbox.push_back({id, std::move(request), std::move(sink), accepted});
  impl_->wake.notify_one();
  return id;
}

void Engine::Cancel(RequestId id) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->cancels.push_back(id);
  impl_->wake.notify_one();
}

Status Engine::Run() {
  Impl& m = *impl_;
  {
    std::lock_guard<std::mutex> lock(m.mu);
    if (m.loop_running) return Status::FailedPrecondition("Engine::Run is already running");
    m.loop_running = true;
  }
  std::vector<Impl::Submission> subs;
  std::vector<RequestId> cancels;
  while (true) {
    bool stop = false;
    {
      std::unique_lock<std::mutex> lock(m.mu);
      auto has_news = [&] { return m.stopping || !m.inbox.empty() || !m.cancels.empty(); };
      if (m.scheduler.Idle() && !has_news()) m.wake.wait_for(lock, kIdleWait, has_news);
      subs.swap(m.inbox);
      cancels.swap(m.cancels);
      stop = m.stopping;
      // Not idle from the moment the inbox is taken, before Publish says so.
      if (!subs.empty()) m.scheduler_idle = false;
    }
    // Between iterations: requests join, cancelled ones leave (their blocks
    // are free before the next step is planned).
    m.AddAll(subs);
    for (RequestId id : cancels) m.scheduler.Cancel(id);
    cancels.clear();
    if (stop) {
      // Collect what is in flight so the runner (and a pipeline's workers)
      // are left with nothing pending.
      Status drained = m.scheduler.DrainInFlight();
      m.FailEverything(drained.ok() ? Status::Unavailable("server stopping") : drained);
      std::lock_guard<std::mutex> lock(m.mu);
      m.loop_running = false;
      return drained;
    }
    if (!m.scheduler.Idle()) {
      Status st = m.scheduler.Step();
      if (!st.ok()) {
        {
          std::lock_guard<std::mutex> lock(m.mu);
          m.failure = st;
          m.admitting = false;
        }
        m.FailEverything(st);
        std::lock_guard<std::mutex> lock(m.mu);
        m.loop_running = false;
        return st;
      }
    }
    m.Publish();
  }
}

Status Engine::Warmup(int num_requests, int prompt_tokens, int new_tokens) {
  Impl& m = *impl_;
  const ModelConfig& config = m.runner.config();
  const int capacity = std::min(config.max_positions, m.blocks.num_blocks() * m.blocks.block_size());
  const int prompt = std::clamp(prompt_tokens, 1, std::max(1, capacity - 1));
  const int fresh = std::clamp(new_tokens, 0, capacity - prompt);
  for (int i = 0; i < num_requests; ++i) {
    GenerationRequest r;
    for (int j = 0; j < prompt; ++j) r.prompt_ids.push_back((i * 31 + j * 7 + 1) % config.vocab_size);
    r.max_new_tokens = fresh;
    r.ignore_eos = true;
    r.sampling.temperature = 0.0f;
    BATON_RETURN_IF_ERROR(Validate(r).WithContext("warmup request"));
    RequestId id;
    {
      std::lock_guard<std::mutex> lock(m.mu);
      id = m.next_id++;
    }
    m.scheduler.Add(id, std::move(r), nullptr);
  }
  while (!m.scheduler.Idle()) {
    Status st = m.scheduler.Step();
    if (!st.ok()) {
      m.scheduler.FailAll(st);
      m.Publish();
      return st.WithContext("warmup");
    }
  }
  m.blocks.ClearPrefixCache();
  m.blocks.ResetPrefixStats();
  m.scheduler.ResetStats();
  m.Publish();
  return Status::Ok();
}

void Engine::StopAdmission() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->admitting = false;
}

void Engine::Stop() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->admitting = false;
  impl_->stopping = true;
  impl_->wake.notify_one();
}

bool Engine::Idle() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->inbox.empty() && impl_->scheduler_idle;
}

EngineStats Engine::Stats() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  EngineStats s = impl_->stats;
  s.waiting += static_cast<int>(impl_->inbox.size());
  return s;
}

}  // namespace baton
