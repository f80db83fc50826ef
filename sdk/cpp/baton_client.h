// BatonClient: the C++ client of baton-server (the baton.v1.Generation and
// grpc.health.v1.Health services). Requests and events are the generated
// protobuf types of proto/baton/v1/generation.proto; failures come back as
// baton::Status mapped from the gRPC code (sdk/cpp/grpc_status.h), e.g.
// INVALID_ARGUMENT -> kInvalidArgument with the server's message naming the
// field. Thread-safe: one client (one channel) may carry many threads' calls
// at once.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "baton/v1/generation.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "runtime/core/status.h"

namespace baton {

struct CallOptions {
  double timeout_seconds = 0;  // deadline of the whole call; 0 = none
};

// Sets the deadline CallOptions asks for on a call's context (every client
// of this SDK does so).
void ApplyCallOptions(const CallOptions& options, grpc::ClientContext& context);

enum class ServingStatus { kUnknown, kServing, kNotServing, kServiceUnknown };
// "UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN" (as grpc.health.v1 names them)
const char* ServingStatusName(ServingStatus status);

class BatonClient {
 public:
  // `target`: "host:port" or any gRPC target URI; a plaintext channel.
  explicit BatonClient(const std::string& target);
  explicit BatonClient(std::shared_ptr<grpc::Channel> channel);

  // Sees every token event as it arrives; returning false cancels the
  // request (Generate then returns kCancelled).
  using TokenCallback = std::function<bool(const v1::TokenEvent&)>;

  // Runs one generation, passing token events to `on_token` (may be empty),
  // and returns the final event. A final event that reports
  // FINISH_REASON_ERROR is returned as kInternal carrying its error text.
  StatusOr<v1::FinalEvent> Generate(const v1::GenerateRequest& request, const TokenCallback& on_token,
                                    const CallOptions& options = {});
  StatusOr<std::vector<int32_t>> Tokenize(const std::string& text, bool add_special_tokens = false,
                                          const CallOptions& options = {});
  StatusOr<std::string> Detokenize(const std::vector<int32_t>& token_ids, bool skip_special_tokens = false,
                                   const CallOptions& options = {});
  StatusOr<v1::ModelInfo> GetModelInfo(const CallOptions& options = {});
  // `service` "" asks about the server as a whole.
  StatusOr<ServingStatus> Health(const std::string& service = "", const CallOptions& options = {});

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Generation::Stub> generation_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
};

}  // namespace baton
