#include "sdk/cpp/baton_client.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <chrono>

#include "sdk/cpp/grpc_status.h"

namespace baton {

void ApplyCallOptions(const CallOptions& options, grpc::ClientContext& context) {
  if (options.timeout_seconds > 0) {
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::duration_cast<std::chrono::system_clock::duration>(
                             std::chrono::duration<double>(options.timeout_seconds)));
  }
}

const char* ServingStatusName(ServingStatus status) {
  switch (status) {
    case ServingStatus::kServing:
      return "SERVING";
    case ServingStatus::kNotServing:
      return "NOT_SERVING";
    case ServingStatus::kServiceUnknown:
      return "SERVICE_UNKNOWN";
    case ServingStatus::kUnknown:
      break;
  }
  return "UNKNOWN";
}

BatonClient::BatonClient(const std::string& target)
    : BatonClient(grpc::CreateChannel(target, grpc::InsecureChannelCredentials())) {}

BatonClient::BatonClient(std::shared_ptr<grpc::Channel> channel)
    : channel_(std::move(channel)),
      generation_(v1::Generation::NewStub(channel_)),
      health_(grpc::health::v1::Health::NewStub(channel_)) {}

StatusOr<v1::FinalEvent> BatonClient::Generate(const v1::GenerateRequest& request, const TokenCallback& on_token,
                                               const CallOptions& options) {
  grpc::ClientContext context;
  ApplyCallOptions(options, context);
  std::unique_ptr<grpc::ClientReader<v1::GenerateResponse>> reader = generation_->Generate(&context, request);
  v1::GenerateResponse response;
  v1::FinalEvent final_event;
  bool have_final = false, cancelled = false;
  while (reader->Read(&response)) {
    if (response.has_token()) {
      if (!cancelled && on_token && !on_token(response.token())) {
        cancelled = true;
        context.TryCancel();  // the rest of the stream is drained below, then Finish reports CANCELLED
      }
    } else if (response.has_final()) {
      final_event = std::move(*response.mutable_final());
      have_final = true;
    }
  }
  const grpc::Status status = reader->Finish();
  if (cancelled) return Status(StatusCode::kCancelled, "Generate: cancelled by the caller");
  if (!status.ok()) return FromGrpcStatus(status, "Generate");
  if (!have_final) return Status::Internal("Generate: the stream ended without a final event");
  if (final_event.finish_reason() == v1::FINISH_REASON_ERROR) {
    return Status::Internal("Generate: " +
                            (final_event.error().empty() ? "the server reported an error" : final_event.error()));
  }
  return final_event;
}

StatusOr<std::vector<int32_t>> BatonClient::Tokenize(const std::string& text, bool add_special_tokens,
                                                     const CallOptions& options) {
  grpc::ClientContext context;
  ApplyCallOptions(options, context);
  v1::TokenizeRequest request;
  request.set_text(text);
  request.set_add_special_tokens(add_special_tokens);
  v1::TokenizeResponse response;
  BATON_RETURN_IF_ERROR(FromGrpcStatus(generation_->Tokenize(&context, request, &response), "Tokenize"));
  return std::vector<int32_t>(response.token_ids().begin(), response.token_ids().end());
}

StatusOr<std::string> BatonClient::Detokenize(const std::vector<int32_t>& token_ids, bool skip_special_tokens,
                                              const CallOptions& options) {
  grpc::ClientContext context;
  ApplyCallOptions(options, context);
  v1::DetokenizeRequest request;
  request.mutable_token_ids()->Add(token_ids.begin(), token_ids.end());
  request.set_skip_special_tokens(skip_special_tokens);
  v1::DetokenizeResponse response;
  BATON_RETURN_IF_ERROR(FromGrpcStatus(generation_->Detokenize(&context, request, &response), "Detokenize"));
  return std::move(*response.mutable_text());
}

StatusOr<v1::ModelInfo> BatonClient::GetModelInfo(const CallOptions& options) {
  grpc::ClientContext context;
  ApplyCallOptions(options, context);
  v1::ModelInfo info;
  BATON_RETURN_IF_ERROR(
      FromGrpcStatus(generation_->GetModelInfo(&context, v1::GetModelInfoRequest(), &info), "GetModelInfo"));
  return info;
}

StatusOr<ServingStatus> BatonClient::Health(const std::string& service, const CallOptions& options) {
  grpc::ClientContext context;
  ApplyCallOptions(options, context);
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  BATON_RETURN_IF_ERROR(FromGrpcStatus(health_->Check(&context, request, &response), "Health"));
  switch (response.status()) {
    case grpc::health::v1::HealthCheckResponse::SERVING:
      return ServingStatus::kServing;
    case grpc::health::v1::HealthCheckResponse::NOT_SERVING:
      return ServingStatus::kNotServing;
    case grpc::health::v1::HealthCheckResponse::SERVICE_UNKNOWN:
      return ServingStatus::kServiceUnknown;
    default:
      return ServingStatus::kUnknown;
  }
}

}  // namespace baton
