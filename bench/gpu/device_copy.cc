#include "bench/gpu/device_copy.h"

#include <cuda_runtime_api.h>

#include <algorithm>

#include "runtime/backend/cuda/cuda_check.h"

namespace baton::bench {

StatusOr<double> MeasureDeviceCopyGBs(size_t bytes, int repeats) {
  void* src = nullptr;
  void* dst = nullptr;
  BATON_CUDA_CHECK(cudaMalloc(&src, bytes));
  BATON_CUDA_CHECK(cudaMalloc(&dst, bytes));
  BATON_CUDA_CHECK(cudaMemset(src, 1, bytes));
  cudaEvent_t start, stop;
  BATON_CUDA_CHECK(cudaEventCreate(&start));
  BATON_CUDA_CHECK(cudaEventCreate(&stop));
  float best_ms = 1e30f;
  for (int i = 0; i < repeats + 2; ++i) {  // two warm-ups
    BATON_CUDA_CHECK(cudaEventRecord(start));
    BATON_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice));
    BATON_CUDA_CHECK(cudaEventRecord(stop));
    BATON_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    BATON_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    if (i >= 2) best_ms = std::min(best_ms, ms);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cudaFree(src);
  cudaFree(dst);
  return 2.0 * static_cast<double>(bytes) / (best_ms * 1e-3) / 1e9;
}

}  // namespace baton::bench
