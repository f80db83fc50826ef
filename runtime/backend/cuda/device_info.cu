#include "runtime/backend/cuda/cuda_check.h"
#include "runtime/backend/cuda/device_info.h"

namespace baton::cuda {

int VisibleDeviceCount() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error
    return 0;
  }
  return count;
}

static Status FillDeviceInfo(int index, DeviceInfo* info) {
  cudaDeviceProp prop{};
  BATON_CUDA_CHECK(cudaGetDeviceProperties(&prop, index));
  info->index = index;
  info->name = prop.name;
  info->total_memory_bytes = prop.totalGlobalMem;
  info->compute_capability_major = prop.major;
  info->compute_capability_minor = prop.minor;
  info->multiprocessors = prop.multiProcessorCount;
  return Status::Ok();
}

StatusOr<DeviceInfo> GetDeviceInfo(int index) {
  int count = VisibleDeviceCount();
  if (index < 0 || index >= count) {
    return Status::InvalidArgument("CUDA device " + std::to_string(index) + " does not exist (" +
                                   std::to_string(count) + " visible)");
  }
  DeviceInfo info;
  BATON_RETURN_IF_ERROR(FillDeviceInfo(index, &info));
  return info;
}

}  // namespace baton::cuda
