// BATON_NCCL_CHECK: every NCCL call that can fail goes through it, so a
// NCCL error travels up as a Status naming the call, NCCL's explanation
// (and its last-error text, which says which peer or transport failed) and
// where the call was made. ncclInProgress is not an error: nonblocking
// communicators answer it while work is still being set up, and the caller
// polls ncclCommGetAsyncError (NcclCommunicator does).
// Only compiled where NCCL is (BATON_WITH_NCCL).
#pragma once

#include <nccl.h>

#include <string>

#include "runtime/core/status.h"

namespace baton {

inline Status NcclErrorStatus(ncclResult_t result, const char* call, const char* file, int line) {
  if (result == ncclSuccess || result == ncclInProgress) return Status::Ok();
  std::string message = std::string(call) + " failed: " + ncclGetErrorString(result);
  const char* last = ncclGetLastError(nullptr);
  if (last != nullptr && *last != '\0') message += std::string(" (") + last + ")";
  message += " at " + std::string(file) + ":" + std::to_string(line);
  // A peer that went away or a broken link reads as Unavailable, like an
  // MPI timeout; bad arguments are ours, everything else NCCL's.
  if (result == ncclRemoteError || result == ncclSystemError) return Status::Unavailable(message);
  if (result == ncclInvalidArgument || result == ncclInvalidUsage) return Status::InvalidArgument(message);
  return Status::Internal(message);
}

}  // namespace baton

#define BATON_NCCL_CHECK(call) BATON_RETURN_IF_ERROR(::baton::NcclErrorStatus((call), #call, __FILE__, __LINE__))
