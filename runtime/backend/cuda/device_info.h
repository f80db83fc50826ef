// What CUDA devices this process sees. Safe to call without a GPU or driver:
// it then reports zero devices rather than failing.
#pragma once

#include <string>
#include <vector>

#include "runtime/core/status.h"

namespace baton::cuda {

struct DeviceInfo {
  int index = 0;
  std::string name;
  size_t total_memory_bytes = 0;
  int compute_capability_major = 0;
  int compute_capability_minor = 0;
  int multiprocessors = 0;
};

// Number of visible devices; 0 when there is no GPU or no driver.
int VisibleDeviceCount();
StatusOr<DeviceInfo> GetDeviceInfo(int index);

}  // namespace baton::cuda
