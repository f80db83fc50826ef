// Device helpers shared by the CUDA op kernels: float conversion of the
// storage types, dtype dispatch, launch checking and warp reductions.
// Included only by .cu files (C++17, nvcc).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <library_types.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "runtime/core/tensor.h"

namespace baton::cuda {

// Storage <-> float32. Arithmetic is always float32; only loads and stores
// see the 16-bit types.
__device__ __forceinline__ float ToF(float x) { return x; }
__device__ __forceinline__ float ToF(__half x) { return __half2float(x); }
__device__ __forceinline__ float ToF(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename T>
__device__ __forceinline__ T FromF(float x);
template <>
__device__ __forceinline__ float FromF<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ __half FromF<__half>(float x) {
  return __float2half_rn(x);
}
template <>
__device__ __forceinline__ __nv_bfloat16 FromF<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}

__device__ __forceinline__ float WarpSum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float WarpMax(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the whole block (blockDim.x a multiple of 32, at most 1024).
// Every thread gets the result. `scratch` holds 32 floats of shared memory.
__device__ __forceinline__ float BlockSum(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = WarpSum(v);
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : 0.0f;
  return WarpSum(v);
}

// Ops are void (the Backend interface): a failed launch or a broken shape
// contract is a programming error inside Baton, so it aborts with the op
// named, like CpuCheck does on the CPU.
[[noreturn]] void DieCuda(const char* op, const char* what);
void CheckLaunch(const char* op);  // cudaGetLastError after a launch
inline void Require(bool ok, const char* op, const char* what) {
  if (!ok) DieCuda(op, what);
}

// The cuBLAS/cuBLASLt data type of a float DType; `op` names the caller if
// the dtype is not one.
inline cudaDataType_t CudaDataType(DType t, const char* op) {
  switch (t) {
    case DType::kF32:
      return CUDA_R_32F;
    case DType::kF16:
      return CUDA_R_16F;
    case DType::kBF16:
      return CUDA_R_16BF;
    default:
      DieCuda(op, "tensor dtype is not F32/F16/BF16");
  }
}

// An attribute of the current device, or 0 when CUDA cannot say (launch
// tuning falls back to its plain form then).
inline int CurrentDeviceAttribute(cudaDeviceAttr attribute) {
  int device = 0, value = 0;
  if (cudaGetDevice(&device) != cudaSuccess || cudaDeviceGetAttribute(&value, attribute, device) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return value;
}

inline unsigned BlocksFor(int64_t n, int threads) {
  int64_t b = (n + threads - 1) / threads;
  return static_cast<unsigned>(b < 1 ? 1 : (b > 65535LL * 16 ? 65535LL * 16 : b));
}

}  // namespace baton::cuda

// Runs BODY with `T` bound to the device storage type of a float DType.
#define BATON_DISPATCH_FLOAT(dtype, op, ...)                          \
  switch (dtype) {                                                    \
    case ::baton::DType::kF32: {                                      \
      using T = float;                                                \
      __VA_ARGS__;                                                    \
      break;                                                          \
    }                                                                 \
    case ::baton::DType::kF16: {                                      \
      using T = __half;                                               \
      __VA_ARGS__;                                                    \
      break;                                                          \
    }                                                                 \
    case ::baton::DType::kBF16: {                                     \
      using T = __nv_bfloat16;                                        \
      __VA_ARGS__;                                                    \
      break;                                                          \
    }                                                                 \
    default:                                                          \
      ::baton::cuda::DieCuda(op, "tensor dtype is not F32/F16/BF16"); \
  }
