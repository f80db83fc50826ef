#include "launch/server/finetune_jobs.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>

namespace baton::server {
namespace {

namespace fs = std::filesystem;
using SteadyClock = std::chrono::steady_clock;

constexpr int kPollMs = 200;       // how often a reader looks at its job when the child is quiet
constexpr int kLogTailLines = 12;  // of a failed job's log, in its error
constexpr auto kDrainAfterExit = std::chrono::seconds(2);  // stdout left open by strays, once the leader exited

double UnixNow() { return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count(); }

bool Ended(v1::JobState s) {
  return s == v1::JOB_STATE_SUCCEEDED || s == v1::JOB_STATE_FAILED || s == v1::JOB_STATE_CANCELLED;
}

std::string StateName(v1::JobState s) {
  std::string name = v1::JobState_Name(s);
  name.erase(0, std::string("JOB_STATE_").size());
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
  return name;
}

// A number field of a progress line; NaN when missing or null (how JSON
// writers spell a NaN loss).
double NumberField(const nlohmann::json& line, const char* key) {
  const auto it = line.find(key);
  return it != line.end() && it->is_number() ? it->get<double>() : std::numeric_limits<double>::quiet_NaN();
}

// The last lines of a log file, for a failed job's error.
std::string LogTail(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "(no log)";
  in.seekg(0, std::ios::end);
  in.seekg(std::max<std::streamoff>(0, static_cast<std::streamoff>(in.tellg()) - 4096));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!text.empty() && text.back() == '\n') text.pop_back();
  size_t start = text.size();
  for (int lines = 0; lines < kLogTailLines && start != 0; ++lines) {
    const size_t newline = text.rfind('\n', start - 1);
    start = newline == std::string::npos ? 0 : newline;
  }
  return text.substr(start == 0 ? 0 : start + 1);
}

void LogJob(const v1::Job& job) {
  nlohmann::json line = {{"event", "finetune_job"}, {"id", job.id()},   {"state", StateName(job.state())},
                         {"step", job.step()},      {"pid", job.pid()}, {"out", job.out()}};
  if (!job.error().empty()) line["error"] = job.error();
  std::fprintf(stderr, "%s\n", line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
}

// Sends `event` to every sink, dropping those that want no more.
void Deliver(std::vector<FinetuneJobs::EventSink>& sinks, const v1::WatchJobResponse& event) {
  sinks.erase(std::remove_if(sinks.begin(), sinks.end(), [&](const FinetuneJobs::EventSink& s) { return !s(event); }),
              sinks.end());
}

Status JobNotFound(const std::string& id) {
  return Status::NotFound("id: no fine-tuning job '" + id + "' on this server");
}

}  // namespace

StatusOr<std::unique_ptr<FinetuneJobs>> FinetuneJobs::Create(FinetuneConfig config) {
  if (config.max_running_jobs < 1) {
    return Status::InvalidArgument("--max-finetune-jobs must be >= 1 (got " + std::to_string(config.max_running_jobs) +
                                   ")");
  }
  if (!(config.cancel_grace_s >= 0)) return Status::InvalidArgument("the cancel grace period must be >= 0");
  std::error_code error;
  fs::create_directories(config.dir, error);
  if (error) return Status::InvalidArgument("--finetune-dir " + config.dir.string() + ": " + error.message());
  config.dir = fs::canonical(config.dir, error);
  if (error) return Status::InvalidArgument("--finetune-dir " + config.dir.string() + ": " + error.message());
  if (config.baton_binary.empty() || access(config.baton_binary.c_str(), X_OK) != 0 ||
      !fs::is_regular_file(config.baton_binary, error)) {
    return Status::InvalidArgument("--baton-binary '" + config.baton_binary + "' is not an executable file");
  }
  config.default_model = fs::absolute(config.default_model, error).string();
  return std::unique_ptr<FinetuneJobs>(new FinetuneJobs(std::move(config)));
}

FinetuneJobs::~FinetuneJobs() { Shutdown(); }

StatusOr<v1::Job> FinetuneJobs::CreateJob(const v1::CreateJobRequest& request) {
  BATON_ASSIGN_OR_RETURN(FinetunePlan plan, PlanFinetuneJob(request, config_));
  std::lock_guard lock(mu_);
  if (shut_down_) return Status::Unavailable("the server is shutting down; no new fine-tuning jobs");
  JoinFinishedReaders();
  for (const Job* other : order_) {
    if (!Ended(other->info.state()) && other->info.out() == plan.out.string()) {
      return Status::FailedPrecondition("out: '" + request.out() + "' is the output folder of job " + other->info.id() +
                                        ", which is " + StateName(other->info.state()));
    }
  }
  std::string id;
  fs::path job_dir;
  for (int attempt = 0;; ++attempt) {
    id = NewJobId();
    job_dir = config_.dir / id;
    std::error_code error;
    if (fs::create_directory(job_dir, error)) break;
    if (error || attempt >= 8) {
      return Status::Internal("cannot create the job folder " + job_dir.string() + ": " +
                              (error ? error.message() : std::string("it keeps existing")));
    }
  }
  auto job = std::make_unique<Job>();
  job->info.set_id(id);
  job->info.set_state(v1::JOB_STATE_QUEUED);
  *job->info.mutable_request() = request;
  job->info.set_total_steps(plan.total_steps);
  job->info.set_create_time(UnixNow());
  job->info.set_out(plan.out.string());
  job->info.set_log_path((job_dir / "log.txt").string());
  job->argv = std::move(plan.argv);
  Job& created = *job;
  jobs_.emplace(id, std::move(job));
  order_.push_back(&created);
  queue_.push_back(&created);
  LogJob(created.info);
  StartQueued();
  return created.info;
}

StatusOr<v1::Job> FinetuneJobs::GetJob(const std::string& id) {
  std::lock_guard lock(mu_);
  const Job* job = Find(id);
  if (!job) return JobNotFound(id);
  return job->info;
}

std::vector<v1::Job> FinetuneJobs::ListJobs() {
  std::lock_guard lock(mu_);
  std::vector<v1::Job> all;
  for (const Job* job : order_) all.push_back(job->info);
  return all;
}

Status FinetuneJobs::WatchJob(const std::string& id, EventSink sink) {
  std::lock_guard lock(mu_);
  Job* job = Find(id);
  if (!job) return JobNotFound(id);
  v1::WatchJobResponse event;
  for (const v1::StepEvent& step : job->steps) {
    *event.mutable_step() = step;
    if (!sink(event)) return Status::Ok();
  }
  if (Ended(job->info.state())) {
    *event.mutable_final() = job->info;
    sink(event);
  } else {
    job->watchers.push_back(std::move(sink));
  }
  return Status::Ok();
}

Status FinetuneJobs::CancelJob(const std::string& id, std::function<void(const v1::Job&)> ended) {
  std::lock_guard lock(mu_);
  Job* job = Find(id);
  if (!job) return JobNotFound(id);
  if (Ended(job->info.state())) {
    ended(job->info);
    return Status::Ok();
  }
  job->on_end.push_back(std::move(ended));
  if (job->info.state() == v1::JOB_STATE_QUEUED) {
    queue_.erase(std::find(queue_.begin(), queue_.end(), job));
    End(*job, v1::JOB_STATE_CANCELLED, "");
  } else if (!job->cancel_requested) {
    job->cancel_requested = true;
    job->cancel_time = SteadyClock::now();
    job->process->Signal(SIGTERM);
  }
  return Status::Ok();
}

void FinetuneJobs::Shutdown() {
  std::vector<std::thread> readers;
  {
    std::lock_guard lock(mu_);
    shut_down_ = true;
    for (Job* job : queue_) End(*job, v1::JOB_STATE_CANCELLED, "");
    queue_.clear();
    for (Job* job : order_) {
      if (job->info.state() == v1::JOB_STATE_RUNNING && !job->cancel_requested) {
        job->cancel_requested = true;
        job->cancel_time = SteadyClock::now();
        job->process->Signal(SIGTERM);
      }
      if (job->reader.joinable()) readers.push_back(std::move(job->reader));
    }
  }
  for (std::thread& reader : readers) reader.join();
}

FinetuneJobs::Job* FinetuneJobs::Find(const std::string& id) {
  const auto it = jobs_.find(id);
  return it == jobs_.end() ? nullptr : it->second.get();
}

std::string FinetuneJobs::NewJobId() {
  static std::mt19937_64 rng{std::random_device{}()};
  char id[32];
  std::snprintf(id, sizeof id, "ft-%012llx", static_cast<unsigned long long>(rng() & 0xffffffffffffULL));
  return id;
}

void FinetuneJobs::StartQueued() {
  while (running_ < config_.max_running_jobs && !queue_.empty()) {
    Job* job = queue_.front();
    queue_.pop_front();
    Launch(*job);
  }
}

void FinetuneJobs::Launch(Job& job) {
  StatusOr<std::unique_ptr<ChildProcess>> started = ChildProcess::Start(job.argv, job.info.log_path());
  if (!started.ok()) {
    End(job, v1::JOB_STATE_FAILED, started.status().message());
    return;
  }
  job.process = std::move(started).value();
  job.info.set_state(v1::JOB_STATE_RUNNING);
  job.info.set_start_time(UnixNow());
  job.info.set_pid(job.process->pid());
  ++running_;
  LogJob(job.info);
  job.reader = std::thread([this, &job, process = job.process] { Read(job, process); });
}

void FinetuneJobs::End(Job& job, v1::JobState state, const std::string& error) {
  job.info.set_state(state);
  job.info.set_error(error);
  job.info.set_finish_time(UnixNow());
  job.info.set_pid(0);
  LogJob(job.info);
  v1::WatchJobResponse final;
  *final.mutable_final() = job.info;
  Deliver(job.watchers, final);
  job.watchers.clear();
  for (auto& ended : job.on_end) ended(job.info);
  job.on_end.clear();
}

void FinetuneJobs::JoinFinishedReaders() {
  for (Job* job : order_) {
    if (job->reader_finished && job->reader.joinable()) job->reader.join();
  }
}

void FinetuneJobs::Read(Job& job, std::shared_ptr<ChildProcess> process) {
  std::string log_path, line;
  {
    std::lock_guard lock(mu_);
    log_path = job.info.log_path();
  }
  int exit_status = 0;
  bool reaped = false;
  SteadyClock::time_point drain_until = SteadyClock::time_point::max();
  for (;;) {
    const ChildProcess::ReadResult read = process->ReadLine(kPollMs, line);
    if (read == ChildProcess::ReadResult::kEof) break;
    {
      std::lock_guard lock(mu_);
      if (read == ChildProcess::ReadResult::kLine) HandleLine(job, line);
      EscalateCancel(job, *process);
    }
    // The leader may exit while a stray holds stdout open: reaping it kills
    // its group, and whatever is still buffered gets a moment to arrive.
    if (read == ChildProcess::ReadResult::kTimeout && !reaped && process->TryReap(exit_status)) {
      reaped = true;
      drain_until = SteadyClock::now() + kDrainAfterExit;
    }
    if (reaped && SteadyClock::now() > drain_until) break;
  }
  while (!reaped && !(reaped = process->TryReap(exit_status))) {
    {
      std::lock_guard lock(mu_);
      EscalateCancel(job, *process);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  // saw_done is written only by this thread: no lock needed to read it here.
  const bool exited_ok = exit_status >= 0 && WIFEXITED(exit_status) && WEXITSTATUS(exit_status) == 0;
  const bool succeeded = exited_ok && job.saw_done;
  const std::string tail = succeeded ? "" : LogTail(log_path);

  std::lock_guard lock(mu_);
  if (succeeded) {
    End(job, v1::JOB_STATE_SUCCEEDED, "");
  } else if (job.cancel_requested) {
    End(job, v1::JOB_STATE_CANCELLED, "");
  } else {
    std::string error = "baton finetune " + ExitDescription(exit_status);
    if (exited_ok) error += " without its final {\"done\": true} line";
    End(job, v1::JOB_STATE_FAILED, error + "; end of " + log_path + ":\n" + tail);
  }
  job.process.reset();
  --running_;
  if (!shut_down_) StartQueued();
  job.reader_finished = true;  // last touch of the lock: from here Join may run
}

void FinetuneJobs::HandleLine(Job& job, const std::string& line) {
  const nlohmann::json parsed = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded() || !parsed.is_object()) return;  // not a progress line (a launcher's chatter)
  const auto done = parsed.find("done");
  if (done != parsed.end() && done->is_boolean() && done->get<bool>()) {
    job.saw_done = true;
    job.info.set_final_loss(NumberField(parsed, "final_loss"));
    const auto steps = parsed.find("steps");
    if (steps != parsed.end() && steps->is_number_integer()) job.info.set_total_steps(steps->get<int>());
    return;
  }
  const auto step = parsed.find("step");
  if (step == parsed.end() || !step->is_number_integer()) return;
  v1::WatchJobResponse event;
  v1::StepEvent& e = *event.mutable_step();
  e.set_step(step->get<int>());
  e.set_loss(NumberField(parsed, "loss"));
  e.set_lr(NumberField(parsed, "lr"));
  e.set_grad_norm(NumberField(parsed, "grad_norm"));
  e.set_tokens_per_s(NumberField(parsed, "tokens_per_s"));
  e.set_eta_s(NumberField(parsed, "eta_s"));
  job.steps.push_back(e);
  job.info.set_step(e.step());
  job.info.set_loss(e.loss());
  job.info.set_lr(e.lr());
  job.info.set_tokens_per_s(e.tokens_per_s());
  job.info.set_eta_s(e.eta_s());
  Deliver(job.watchers, event);
}

void FinetuneJobs::EscalateCancel(Job& job, ChildProcess& process) {
  if (!job.cancel_requested || job.killed) return;
  if (SteadyClock::now() - job.cancel_time < std::chrono::duration<double>(config_.cancel_grace_s)) return;
  process.Signal(SIGKILL);
  job.killed = true;
}

}  // namespace baton::server
