// Programmatic dependent launch (Hopper): a kernel launched with
// LaunchChained may start while the kernel before it in the stream is
// still running. Each such kernel calls AllowNextGrid() first, so that the
// kernel after it can be scheduled early too, and WaitForPriorGrid()
// before it touches memory that an earlier kernel writes or reads (until
// the wait returns, the previous grid may still be running; once it
// returns, that grid has finished and its writes are visible). What a
// kernel does before the wait overlaps the previous kernel: launch latency
// for all of them, and for the GEMV the first loads of its weights, which
// no kernel writes. At batch-1 decode, where a step is ~180 kernels of a
// few microseconds, the gaps between kernels are a large share of the
// step. Inside CUDA graph capture the same attribute becomes a
// programmatic edge. Where the GPU or the switch says no, the launches are
// ordinary and the device calls are no-ops.
#pragma once

#include <cuda_runtime.h>

#include <utility>

#include "runtime/backend/cuda/chained_launch.h"
#include "runtime/backend/cuda/common.cuh"

namespace baton::cuda {

__device__ __forceinline__ void AllowNextGrid() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

__device__ __forceinline__ void WaitForPriorGrid() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// kernel<<<grid, block, shared_bytes, stream>>>(args...), chained to the
// kernel before it when ChainedLaunch(). The kernel must call
// WaitForPriorGrid() before its first access to memory other kernels use.
template <typename... Params, typename... Args>
void LaunchChained(const char* op, void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared_bytes,
                   cudaStream_t stream, Args&&... args) {
  cudaLaunchAttribute attribute = {};
  attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = shared_bytes;
  config.stream = stream;
  config.attrs = &attribute;
  config.numAttrs = ChainedLaunch() ? 1 : 0;
  const cudaError_t err = cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
  if (err != cudaSuccess) DieCuda(op, cudaGetErrorString(err));
}

}  // namespace baton::cuda
