// MakeCudaBackend: the one way model code gets a GPU backend. This header
// needs no CUDA: a build without CUDA links a version that always answers
// Unavailable, so callers choose the backend at run time without #ifdefs.
#pragma once

#include <memory>

#include "runtime/backend/backend.h"
#include "runtime/core/status.h"

namespace baton {

// A backend on CUDA device `device` storing activations and weights in
// `compute_dtype` (F32, F16 or BF16). Unavailable when Baton was built
// without CUDA or no GPU is visible; InvalidArgument for a device index
// that does not exist or a dtype that is not a float type; the failing
// call's status if the stream, cuBLAS handle or workspace cannot be made.
StatusOr<std::unique_ptr<Backend>> MakeCudaBackend(DType compute_dtype, int device);

// True when this build has the CUDA backend compiled in.
bool CudaBackendCompiledIn();

// GPUs this process sees: 0 without CUDA, a driver or a device (never fails).
int CudaDeviceCount();

// Device memory as a backend made by MakeCudaBackend sees it, for sizing
// the KV cache after the weights are loaded. Cached, unused blocks of the
// backend's allocator are handed back to the driver first, so `free_bytes`
// counts them. InvalidArgument for a backend that is not CUDA.
struct DeviceMemory {
  size_t free_bytes = 0;
  size_t total_bytes = 0;
};
StatusOr<DeviceMemory> CudaDeviceMemory(Backend& backend);

// What an allocation of `bytes` really takes on the GPU (the allocator
// rounds sizes up to size classes); `bytes` itself without CUDA.
size_t CudaAllocationBytes(size_t bytes);

}  // namespace baton
