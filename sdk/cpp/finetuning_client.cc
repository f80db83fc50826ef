#include "sdk/cpp/finetuning_client.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include "sdk/cpp/grpc_status.h"

namespace baton {

FineTuningClient::FineTuningClient(const std::string& target)
    : FineTuningClient(grpc::CreateChannel(target, grpc::InsecureChannelCredentials())) {}

FineTuningClient::FineTuningClient(std::shared_ptr<grpc::Channel> channel)
    : stub_(v1::FineTuning::NewStub(std::move(channel))) {}

StatusOr<v1::Job> FineTuningClient::CreateJob(const v1::CreateJobRequest& request, const CallOptions& options) {
  grpc::ClientContext context;
  ApplyCallOptions(options, context);
  v1::Job job;
  BATON_RETURN_IF_ERROR(FromGrpcStatus(stub_->CreateJob(&context, request, &job), "CreateJob"));
  return job;
}

StatusOr<v1::Job> FineTuningClient::GetJob(const std::string& id, const CallOptions& options) {
  grpc::ClientContext context;
  ApplyCallOptions(options, context);
  v1::GetJobRequest request;
  request.set_id(id);
  v1::Job job;
  BATON_RETURN_IF_ERROR(FromGrpcStatus(stub_->GetJob(&context, request, &job), "GetJob"));
  return job;
}

StatusOr<std::vector<v1::Job>> FineTuningClient::ListJobs(const CallOptions& options) {
  grpc::ClientContext context;
  ApplyCallOptions(options, context);
  v1::ListJobsResponse response;
  BATON_RETURN_IF_ERROR(FromGrpcStatus(stub_->ListJobs(&context, v1::ListJobsRequest(), &response), "ListJobs"));
  return std::vector<v1::Job>(response.jobs().begin(), response.jobs().end());
}

StatusOr<v1::Job> FineTuningClient::CancelJob(const std::string& id, const CallOptions& options) {
  grpc::ClientContext context;
  ApplyCallOptions(options, context);
  v1::CancelJobRequest request;
  request.set_id(id);
  v1::Job job;
  BATON_RETURN_IF_ERROR(FromGrpcStatus(stub_->CancelJob(&context, request, &job), "CancelJob"));
  return job;
}

StatusOr<v1::Job> FineTuningClient::WatchJob(const std::string& id, const StepCallback& on_step,
                                             const CallOptions& options) {
  grpc::ClientContext context;
  ApplyCallOptions(options, context);
  v1::WatchJobRequest request;
  request.set_id(id);
  std::unique_ptr<grpc::ClientReader<v1::WatchJobResponse>> reader = stub_->WatchJob(&context, request);
  v1::WatchJobResponse response;
  v1::Job final_job;
  bool have_final = false, stopped = false;
  while (reader->Read(&response)) {
    if (response.has_step()) {
      if (!stopped && on_step && !on_step(response.step())) {
        stopped = true;
        context.TryCancel();
      }
    } else if (response.has_final()) {
      final_job = std::move(*response.mutable_final());
      have_final = true;
    }
  }
  const grpc::Status status = reader->Finish();
  if (stopped) return Status(StatusCode::kCancelled, "WatchJob: stopped by the caller");
  if (!status.ok()) return FromGrpcStatus(status, "WatchJob");
  if (!have_final) return Status::Internal("WatchJob: the stream ended without the job's final state");
  return final_job;
}

}  // namespace baton
