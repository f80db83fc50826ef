#include "launch/server/finetuning_service.h"

#include <deque>
#include <memory>
#include <mutex>

#include "sdk/cpp/grpc_status.h"

namespace baton::server {
namespace {

grpc::Status NotEnabled() {
  return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                      "fine-tuning is not enabled: start the server with --finetune-dir");
}

grpc::Status MissingId() { return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "id: a job id is required"); }

grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* context, const grpc::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

// One WatchJob call. FinetuneJobs reaches it through `Link`, which outlives
// it: events for a watcher that has gone are refused, and the job then drops
// the sink.
class WatchStream final : public grpc::ServerWriteReactor<v1::WatchJobResponse> {
 public:
  struct Link {
    std::recursive_mutex mu;        // recursive: gRPC may run a reaction inline from StartWrite/Finish
    WatchStream* stream = nullptr;  // null once the call is done
  };

  WatchStream() : link_(std::make_shared<Link>()) { link_->stream = this; }

  void Start(FinetuneJobs& jobs, const std::string& id) {
    std::shared_ptr<Link> link = link_;  // keeps the mutex alive if the call ends inside
    const Status watched = jobs.WatchJob(id, [link](const v1::WatchJobResponse& event) {
      std::lock_guard lock(link->mu);
      return link->stream != nullptr && link->stream->Enqueue(event);
    });
    if (!watched.ok()) {
      std::lock_guard lock(link->mu);
      FinishOnce(ToGrpcStatus(watched));
    }
  }

  void OnWriteDone(bool ok) override {
    std::shared_ptr<Link> link = link_;
    std::lock_guard lock(link->mu);
    pending_.pop_front();
    writing_ = false;
    if (!ok || cancelled_) {
      FinishOnce(grpc::Status::CANCELLED);
    } else if (!pending_.empty()) {
      StartNextWrite();
    } else if (final_queued_) {
      FinishOnce(grpc::Status::OK);
    }
  }

  void OnCancel() override {
    std::shared_ptr<Link> link = link_;
    std::lock_guard lock(link->mu);
    cancelled_ = true;
    if (!writing_) FinishOnce(grpc::Status::CANCELLED);
  }

  void OnDone() override {
    {
      std::lock_guard lock(link_->mu);
      link_->stream = nullptr;
    }
    delete this;
  }

 private:
  // Under link_->mu. False: send nothing more.
  bool Enqueue(const v1::WatchJobResponse& event) {
    if (finished_ || final_queued_) return false;
    pending_.push_back(event);
    final_queued_ = event.has_final();
    if (!writing_) StartNextWrite();
    return !final_queued_;
  }

  void StartNextWrite() {
    writing_ = true;
    StartWrite(&pending_.front());
  }

  void FinishOnce(const grpc::Status& status) {
    if (finished_) return;
    finished_ = true;
    Finish(status);
  }

  std::shared_ptr<Link> link_;
  std::deque<v1::WatchJobResponse> pending_;  // front is being written while writing_
  bool writing_ = false;
  bool final_queued_ = false;
  bool cancelled_ = false;
  bool finished_ = false;
};

}  // namespace

grpc::ServerUnaryReactor* FineTuningService::CreateJob(grpc::CallbackServerContext* context,
                                                       const v1::CreateJobRequest* request, v1::Job* response) {
  if (!jobs_) return Answer(context, NotEnabled());
  StatusOr<v1::Job> job = jobs_->CreateJob(*request);
  if (!job.ok()) return Answer(context, ToGrpcStatus(job.status()));
  *response = std::move(job).value();
  return Answer(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* FineTuningService::GetJob(grpc::CallbackServerContext* context,
                                                    const v1::GetJobRequest* request, v1::Job* response) {
  if (!jobs_) return Answer(context, NotEnabled());
  if (request->id().empty()) return Answer(context, MissingId());
  StatusOr<v1::Job> job = jobs_->GetJob(request->id());
  if (!job.ok()) return Answer(context, ToGrpcStatus(job.status()));
  *response = std::move(job).value();
  return Answer(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* FineTuningService::ListJobs(grpc::CallbackServerContext* context, const v1::ListJobsRequest*,
                                                      v1::ListJobsResponse* response) {
  if (!jobs_) return Answer(context, NotEnabled());
  for (v1::Job& job : jobs_->ListJobs()) *response->add_jobs() = std::move(job);
  return Answer(context, grpc::Status::OK);
}

grpc::ServerWriteReactor<v1::WatchJobResponse>* FineTuningService::WatchJob(grpc::CallbackServerContext*,
                                                                            const v1::WatchJobRequest* request) {
  auto* stream = new WatchStream();
  if (!jobs_) {
    stream->Finish(NotEnabled());
  } else if (request->id().empty()) {
    stream->Finish(MissingId());
  } else {
    stream->Start(*jobs_, request->id());
  }
  return stream;
}

grpc::ServerUnaryReactor* FineTuningService::CancelJob(grpc::CallbackServerContext* context,
                                                       const v1::CancelJobRequest* request, v1::Job* response) {
  if (!jobs_) return Answer(context, NotEnabled());
  if (request->id().empty()) return Answer(context, MissingId());
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const Status cancelled = jobs_->CancelJob(request->id(), [reactor, response](const v1::Job& job) {
    *response = job;
    reactor->Finish(grpc::Status::OK);
  });
  if (!cancelled.ok()) reactor->Finish(ToGrpcStatus(cancelled));
  return reactor;
}

}  // namespace baton::server
