// Conversions between grpc::Status and baton::Status, both ways, so the
// server answers with the gRPC code a client maps back to the same
// StatusCode (INVALID_ARGUMENT <-> kInvalidArgument, ...). Stateless.
#pragma once

#include <grpcpp/support/status.h>

#include "runtime/core/status.h"

namespace baton {

// `rpc` (e.g. "Generate") is put before the message of a failure so it
// says which call failed. gRPC codes Baton has no name for become kInternal.
Status FromGrpcStatus(const grpc::Status& status, const std::string& rpc = "");

// kInternal and any code gRPC has no twin for become INTERNAL.
grpc::Status ToGrpcStatus(const Status& status);

}  // namespace baton
