// Elementwise conversion between the float storage types on the device
// (round to nearest even, NaN stays NaN), for Upload and ToHostF32.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "runtime/core/dtype.h"

namespace baton::cuda {

void LaunchConvert(const void* src, DType src_type, void* dst, DType dst_type, int64_t n, cudaStream_t stream);

}  // namespace baton::cuda
