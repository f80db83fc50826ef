// The baton.v1.FineTuning gRPC service (callback API) in front of
// FinetuneJobs. Unary calls answer at once, except CancelJob, which answers
// when the job's process is gone; WatchJob streams a job's step events
// (past ones first) and its final state, written one at a time so a slow
// watcher never holds up a job.
#pragma once

#include "baton/v1/finetuning.grpc.pb.h"
#include "launch/server/finetune_jobs.h"

namespace baton::server {

class FineTuningService final : public v1::FineTuning::CallbackService {
 public:
  // `jobs` null: the server runs no fine-tuning (every call is
  // FAILED_PRECONDITION). Otherwise it must outlive the service.
  explicit FineTuningService(FinetuneJobs* jobs) : jobs_(jobs) {}

  grpc::ServerUnaryReactor* CreateJob(grpc::CallbackServerContext* context, const v1::CreateJobRequest* request,
                                      v1::Job* response) override;
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* context, const v1::GetJobRequest* request,
                                   v1::Job* response) override;
  grpc::ServerUnaryReactor* ListJobs(grpc::CallbackServerContext* context, const v1::ListJobsRequest* request,
                                     v1::ListJobsResponse* response) override;
  grpc::ServerWriteReactor<v1::WatchJobResponse>* WatchJob(grpc::CallbackServerContext* context,
                                                           const v1::WatchJobRequest* request) override;
  grpc::ServerUnaryReactor* CancelJob(grpc::CallbackServerContext* context, const v1::CancelJobRequest* request,
                                      v1::Job* response) override;

 private:
  FinetuneJobs* jobs_;
};

}  // namespace baton::server
