// DeviceAllocator: a caching owner of device memory for one GPU.
//
// cudaMalloc/cudaFree synchronise the device and cost tens of microseconds,
// so freed blocks are kept in per-size free lists and handed out again
// (PyTorch's caching-allocator idea, without block splitting). Sizes are
// rounded up to size classes (multiples of 512 bytes, at most 1/8 apart),
// so reuse is by exact class.
// All work of one backend runs on one stream, so a block released while a
// kernel still reads it is only reused by work queued after that kernel.
// Thread-safe: tensors may be dropped from any thread.
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "runtime/core/status.h"

namespace baton::cuda {

class DeviceAllocator : public std::enable_shared_from_this<DeviceAllocator> {
 public:
  explicit DeviceAllocator(int device) : device_(device) {}
  ~DeviceAllocator();
  DeviceAllocator(const DeviceAllocator&) = delete;
  DeviceAllocator& operator=(const DeviceAllocator&) = delete;

  // Memory for `bytes` (256-byte aligned); the returned owner gives it back
  // to the cache when the last reference goes. When the device is full the
  // cache is emptied and the allocation retried once; if that fails too the
  // status is ResourceExhausted and names the sizes. `what` describes the
  // allocation for that message ("BF16[4096, 4096]").
  StatusOr<std::shared_ptr<void>> Allocate(size_t bytes, const std::string& what);

  // Gives every cached (unused) block back to the driver.
  void EmptyCache();
  size_t bytes_in_use() const;
  size_t bytes_cached() const;

  // The size class `bytes` is rounded up to.
  static size_t RoundSize(size_t bytes);

 private:
  void Release(void* ptr, size_t bytes);

  const int device_;
  mutable std::mutex mu_;
  std::map<size_t, std::vector<void*>> free_;  // size class -> cached blocks
  size_t in_use_ = 0;
  size_t cached_ = 0;
};

}  // namespace baton::cuda
