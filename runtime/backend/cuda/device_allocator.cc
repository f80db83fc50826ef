#include "runtime/backend/cuda/device_allocator.h"

#include <cuda_runtime_api.h>

#include <string>

namespace baton::cuda {

size_t DeviceAllocator::RoundSize(size_t bytes) {
  if (bytes <= 512) return 512;
  // Step = 1/8 of the highest power of two in `bytes`: at most 12.5% waste,
  // and few enough classes that freed blocks find takers.
  size_t top = 1;
  while (top <= bytes / 2) top <<= 1;
  size_t step = top / 8 < 512 ? 512 : top / 8;
  return (bytes + step - 1) / step * step;
}

DeviceAllocator::~DeviceAllocator() { EmptyCache(); }

StatusOr<std::shared_ptr<void>> DeviceAllocator::Allocate(size_t bytes, const std::string& what) {
  const size_t size = RoundSize(bytes);
  void* ptr = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = free_.find(size);
    if (it != free_.end() && !it->second.empty()) {
      ptr = it->second.back();
      it->second.pop_back();
      cached_ -= size;
    }
  }
  if (ptr == nullptr) {
    cudaError_t err = cudaMalloc(&ptr, size);
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();  // clear it, then retry with the cache handed back
      EmptyCache();
      err = cudaMalloc(&ptr, size);
    }
    if (err != cudaSuccess) {
      cudaGetLastError();
      size_t free_bytes = 0, total_bytes = 0;
      cudaMemGetInfo(&free_bytes, &total_bytes);
      std::string msg = "CUDA device " + std::to_string(device_) + ": cudaMalloc of " + std::to_string(size) +
                        " bytes for " + what + " failed: " + cudaGetErrorName(err) + " (" + std::to_string(free_bytes) +
                        " of " + std::to_string(total_bytes) + " bytes free, " + std::to_string(bytes_in_use()) +
                        " held by Baton tensors)";
      if (err == cudaErrorMemoryAllocation) return Status::ResourceExhausted(msg);
      return Status::Internal(msg);
    }
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    in_use_ += size;
  }
  std::shared_ptr<DeviceAllocator> self = shared_from_this();
  return std::shared_ptr<void>(ptr, [self, size](void* p) { self->Release(p, size); });
}

void DeviceAllocator::Release(void* ptr, size_t size) {
  std::lock_guard<std::mutex> lock(mu_);
  free_[size].push_back(ptr);
  in_use_ -= size;
  cached_ += size;
}

void DeviceAllocator::EmptyCache() {
  std::lock_guard<std::mutex> lock(mu_);
  int previous = -1;
  cudaGetDevice(&previous);
  cudaSetDevice(device_);
  for (auto& [size, blocks] : free_) {
    for (void* p : blocks) cudaFree(p);  // errors at process exit (driver gone) are moot
  }
  free_.clear();
  cached_ = 0;
  if (previous >= 0) cudaSetDevice(previous);
  cudaGetLastError();
}

size_t DeviceAllocator::bytes_in_use() const {
  std::lock_guard<std::mutex> lock(mu_);
  return in_use_;
}

size_t DeviceAllocator::bytes_cached() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cached_;
}

}  // namespace baton::cuda
