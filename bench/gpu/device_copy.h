// The GPU's memory bandwidth as a device-to-device copy sees it: bytes read
// plus bytes written per second, best of `repeats` copies of `bytes`, timed
// with CUDA events on the current device. The decode floor divides by it.
#pragma once

#include <cstddef>

#include "runtime/core/status.h"

namespace baton::bench {

StatusOr<double> MeasureDeviceCopyGBs(size_t bytes, int repeats);

}  // namespace baton::bench
