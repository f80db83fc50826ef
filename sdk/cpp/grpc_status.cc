#include "sdk/cpp/grpc_status.h"

namespace baton {
namespace {

// One table for both directions keeps them inverse of each other.
struct CodePair {
  grpc::StatusCode grpc;
  StatusCode baton;
};
constexpr CodePair kCodes[] = {
    {grpc::StatusCode::OK, StatusCode::kOk},
    {grpc::StatusCode::INVALID_ARGUMENT, StatusCode::kInvalidArgument},
    {grpc::StatusCode::NOT_FOUND, StatusCode::kNotFound},
    {grpc::StatusCode::DATA_LOSS, StatusCode::kDataLoss},
    {grpc::StatusCode::OUT_OF_RANGE, StatusCode::kOutOfRange},
    {grpc::StatusCode::UNIMPLEMENTED, StatusCode::kUnimplemented},
    {grpc::StatusCode::FAILED_PRECONDITION, StatusCode::kFailedPrecondition},
    {grpc::StatusCode::RESOURCE_EXHAUSTED, StatusCode::kResourceExhausted},
    {grpc::StatusCode::UNAVAILABLE, StatusCode::kUnavailable},
    {grpc::StatusCode::CANCELLED, StatusCode::kCancelled},
    {grpc::StatusCode::DEADLINE_EXCEEDED, StatusCode::kDeadlineExceeded},
    {grpc::StatusCode::INTERNAL, StatusCode::kInternal},
};

}  // namespace

Status FromGrpcStatus(const grpc::Status& status, const std::string& rpc) {
  if (status.ok()) return Status::Ok();
  StatusCode code = StatusCode::kInternal;
  for (const CodePair& pair : kCodes) {
    if (pair.grpc == status.error_code()) code = pair.baton;
  }
  std::string message = status.error_message();
  if (message.empty()) message = "gRPC status " + std::to_string(static_cast<int>(status.error_code()));
  return Status(code, rpc.empty() ? message : rpc + ": " + message);
}

grpc::Status ToGrpcStatus(const Status& status) {
  if (status.ok()) return grpc::Status::OK;
  grpc::StatusCode code = grpc::StatusCode::INTERNAL;
  for (const CodePair& pair : kCodes) {
    if (pair.baton == status.code()) code = pair.grpc;
  }
  return grpc::Status(code, status.message());
}

}  // namespace baton
