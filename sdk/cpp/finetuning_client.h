// FineTuningClient: the C++ client of baton-server's baton.v1.FineTuning
// service (proto/baton/v1/finetuning.proto). Failures come back as
// baton::Status mapped from the gRPC code (sdk/cpp/grpc_status.h):
// INVALID_ARGUMENT -> kInvalidArgument (the message starts with the field),
// NOT_FOUND -> kNotFound, FAILED_PRECONDITION -> kFailedPrecondition (the
// server runs no fine-tuning). Thread-safe, like BatonClient.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "baton/v1/finetuning.grpc.pb.h"
#include "sdk/cpp/baton_client.h"

namespace baton {

class FineTuningClient {
 public:
  explicit FineTuningClient(const std::string& target);  // "host:port", plaintext
  explicit FineTuningClient(std::shared_ptr<grpc::Channel> channel);

  StatusOr<v1::Job> CreateJob(const v1::CreateJobRequest& request, const CallOptions& options = {});
  StatusOr<v1::Job> GetJob(const std::string& id, const CallOptions& options = {});
  StatusOr<std::vector<v1::Job>> ListJobs(const CallOptions& options = {});
  // Returns once the job has ended (CANCELLED, or the state it had reached).
  StatusOr<v1::Job> CancelJob(const std::string& id, const CallOptions& options = {});

  // Passes every step event (past ones first) to `on_step` and returns the
  // job's final state. `on_step` returning false stops watching (kCancelled).
  using StepCallback = std::function<bool(const v1::StepEvent&)>;
  StatusOr<v1::Job> WatchJob(const std::string& id, const StepCallback& on_step, const CallOptions& options = {});

 private:
  std::unique_ptr<v1::FineTuning::Stub> stub_;
};

}  // namespace baton
