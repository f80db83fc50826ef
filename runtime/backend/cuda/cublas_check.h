// BATON_CUBLAS_CHECK: a failing cuBLAS call as a Status naming the call.
#pragma once

#include <cublas_v2.h>

#include <string>

#include "runtime/core/status.h"

namespace baton::cuda {

inline Status CublasStatus(cublasStatus_t st, const char* call, const char* file, int line) {
  if (st == CUBLAS_STATUS_SUCCESS) return Status::Ok();
  std::string msg = std::string(call) + " failed: " + cublasGetStatusName(st) + " (" + cublasGetStatusString(st) +
                    ") at " + file + ":" + std::to_string(line);
  if (st == CUBLAS_STATUS_ALLOC_FAILED) return Status::ResourceExhausted(msg);
  if (st == CUBLAS_STATUS_NOT_INITIALIZED) return Status::Unavailable(msg);
  return Status::Internal(msg);
}

}  // namespace baton::cuda

#define BATON_CUBLAS_CHECK(call) BATON_RETURN_IF_ERROR(::baton::cuda::CublasStatus((call), #call, __FILE__, __LINE__))
