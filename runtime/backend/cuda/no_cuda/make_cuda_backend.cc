// MakeCudaBackend for builds without CUDA (BATON_CUDA=OFF or no nvcc).
#include "runtime/backend/cuda/make_cuda_backend.h"

namespace baton {

StatusOr<std::unique_ptr<Backend>> MakeCudaBackend(DType, int) {
  return Status::Unavailable("this Baton was built without CUDA (configure with nvcc available, BATON_CUDA=ON)");
}

bool CudaBackendCompiledIn() { return false; }

int CudaDeviceCount() { return 0; }

StatusOr<DeviceMemory> CudaDeviceMemory(Backend& backend) {
  return Status::InvalidArgument(std::string("backend '") + backend.name() + "' is not CUDA (built without CUDA)");
}

size_t CudaAllocationBytes(size_t bytes) { return bytes; }

}  // namespace baton
