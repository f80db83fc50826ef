#include "runtime/backend/cuda/make_cuda_backend.h"

#include "runtime/backend/cuda/cuda_backend.h"
#include "runtime/backend/cuda/cuda_check.h"
#include "runtime/backend/cuda/device_info.h"

namespace baton {

StatusOr<std::unique_ptr<Backend>> MakeCudaBackend(DType compute_dtype, int device) {
  const int count = cuda::VisibleDeviceCount();
  if (count == 0) return Status::Unavailable("no CUDA GPU is visible to this process");
  if (device < 0 || device >= count) {
    return Status::InvalidArgument("CUDA device " + std::to_string(device) + " does not exist (" +
                                   std::to_string(count) + " visible)");
  }
  BATON_ASSIGN_OR_RETURN(std::unique_ptr<CudaBackend> backend, CudaBackend::Create(compute_dtype, device));
  return std::unique_ptr<Backend>(std::move(backend));
}

bool CudaBackendCompiledIn() { return true; }

int CudaDeviceCount() { return cuda::VisibleDeviceCount(); }

StatusOr<DeviceMemory> CudaDeviceMemory(Backend& backend) {
  auto* gpu = dynamic_cast<CudaBackend*>(&backend);
  if (gpu == nullptr) return Status::InvalidArgument(std::string("backend '") + backend.name() + "' is not CUDA");
  BATON_RETURN_IF_ERROR(gpu->Synchronize());  // blocks still read by queued work stay cached until it is done
  gpu->allocator().EmptyCache();
  DeviceMemory m;
  BATON_CUDA_CHECK(cudaSetDevice(gpu->device_index()));
  BATON_CUDA_CHECK(cudaMemGetInfo(&m.free_bytes, &m.total_bytes));
  return m;
}

size_t CudaAllocationBytes(size_t bytes) { return cuda::DeviceAllocator::RoundSize(bytes); }

}  // namespace baton
