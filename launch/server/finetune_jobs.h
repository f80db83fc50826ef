// FinetuneJobs: the fine-tuning jobs of one baton-server (rank 0). Each job
// is a `baton finetune --json` child process (see child_process.h), started
// when fewer than --max-finetune-jobs are running and queued otherwise. A
// reader thread per running job turns the child's JSON lines into progress
// (StepEvents kept for late watchers) and, when the process ends, the job's
// final state: SUCCEEDED (exit 0 after its {"done": true} line), FAILED
// (anything else; the error carries the end of its log) or CANCELLED.
//
// Jobs live as long as the server (they are not persisted). Thread-safe: the
// gRPC threads and the reader threads share one lock. Sinks and callbacks
// given to Watch/Cancel run under that lock, on whichever thread made the
// change, and must not call back into FinetuneJobs.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "baton/v1/finetuning.pb.h"
#include "launch/server/child_process.h"
#include "launch/server/finetune_request.h"
#include "runtime/core/status.h"

namespace baton::server {

class FinetuneJobs {
 public:
  // Creates and canonicalises config.dir and checks the baton binary.
  static StatusOr<std::unique_ptr<FinetuneJobs>> Create(FinetuneConfig config);
  ~FinetuneJobs();  // Shutdown()
  FinetuneJobs(const FinetuneJobs&) = delete;
  FinetuneJobs& operator=(const FinetuneJobs&) = delete;

  const FinetuneConfig& config() const { return config_; }

  // Checks the request (INVALID_ARGUMENT / FAILED_PRECONDITION naming the
  // field), then starts or queues the job. UNAVAILABLE after Shutdown().
  StatusOr<v1::Job> CreateJob(const v1::CreateJobRequest& request);
  StatusOr<v1::Job> GetJob(const std::string& id);
  std::vector<v1::Job> ListJobs();

  // Gets every past step of the job at once, then each new one as it comes,
  // then the final Job. A sink returns false when it wants nothing more.
  using EventSink = std::function<bool(const v1::WatchJobResponse&)>;
  Status WatchJob(const std::string& id, EventSink sink);

  // Stops the job; `ended` gets its final state once it has ended (at once
  // when it was queued or had already ended).
  Status CancelJob(const std::string& id, std::function<void(const v1::Job&)> ended);

  // Refuses new jobs, cancels every queued and running one and waits until
  // their processes are gone (at most the cancel grace period and a bit).
  void Shutdown();

 private:
  struct Job {
    v1::Job info;
    std::vector<std::string> argv;
    std::vector<v1::StepEvent> steps;
    std::vector<EventSink> watchers;
    std::vector<std::function<void(const v1::Job&)>> on_end;
    std::shared_ptr<ChildProcess> process;  // while running
    bool saw_done = false;
    bool cancel_requested = false;
    bool killed = false;  // SIGKILL sent after the grace period
    std::chrono::steady_clock::time_point cancel_time;
    std::thread reader;
    bool reader_finished = false;  // the reader no longer touches the lock: safe to join
  };

  explicit FinetuneJobs(FinetuneConfig config) : config_(std::move(config)) {}

  // Under mu_.
  Job* Find(const std::string& id);
  std::string NewJobId();
  void StartQueued();
  void Launch(Job& job);
  void End(Job& job, v1::JobState state, const std::string& error);
  void JoinFinishedReaders();

  // The reader thread of a running job.
  void Read(Job& job, std::shared_ptr<ChildProcess> process);
  void HandleLine(Job& job, const std::string& line);
  void EscalateCancel(Job& job, ChildProcess& process);

  const FinetuneConfig config_;
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<Job>> jobs_;
  std::vector<Job*> order_;  // creation order, for ListJobs
  std::deque<Job*> queue_;
  int running_ = 0;
  bool shut_down_ = false;
};

}  // namespace baton::server
