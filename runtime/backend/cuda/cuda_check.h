// BATON_CUDA_CHECK: turns a failing CUDA runtime call into a Status that
// names the call, the error and the source location (the NCCLCHECK habit).
#pragma once

#include <cuda_runtime_api.h>

#include <string>

#include "runtime/core/status.h"

namespace baton::cuda {

inline Status CudaStatus(cudaError_t err, const char* call, const char* file, int line) {
  if (err == cudaSuccess) return Status::Ok();
  std::string msg = std::string(call) + " failed: " + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ") at " +
                    file + ":" + std::to_string(line);
  if (err == cudaErrorMemoryAllocation) return Status::ResourceExhausted(msg);
  if (err == cudaErrorNoDevice || err == cudaErrorInsufficientDriver) return Status::Unavailable(msg);
  return Status::Internal(msg);
}

}  // namespace baton::cuda

#define BATON_CUDA_CHECK(call) BATON_RETURN_IF_ERROR(::baton::cuda::CudaStatus((call), #call, __FILE__, __LINE__))
