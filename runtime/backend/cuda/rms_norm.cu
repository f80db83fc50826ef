#include "runtime/backend/cuda/chained_launch.cuh"
#include "runtime/backend/cuda/common.cuh"
#include "runtime/backend/cuda/rms_norm.cuh"

namespace baton::cuda {
namespace {

// One block per row; statistics in float32.
constexpr int kThreads = 256;

template <typename T>
__global__ void __launch_bounds__(kThreads) RmsNormKernel(const T* x, const T* w, float eps, T* y, int64_t h) {
  AllowNextGrid();
  WaitForPriorGrid();
  __shared__ float scratch[32];
  const T* row = x + blockIdx.x * h;
  T* out = y + blockIdx.x * h;
  float sq = 0;
  for (int64_t j = threadIdx.x; j < h; j += blockDim.x) {
    const float v = ToF(row[j]);
    sq += v * v;
  }
  const float rstd = rsqrtf(BlockSum(sq, scratch) / static_cast<float>(h) + eps);
  for (int64_t j = threadIdx.x; j < h; j += blockDim.x) out[j] = FromF<T>(ToF(w[j]) * (ToF(row[j]) * rstd));
}

// Rows of at most kThreads * kMaxVecs 16-byte vectors: each thread keeps
// its vectors in registers, so the row is read once, with 16-byte loads
// (the scalar kernel reads it twice, 2 bytes at a time, and is
// latency-bound on one row per SM in decode).
constexpr int kMaxVecs = 4;

template <typename T>
__global__ void __launch_bounds__(kThreads) RmsNormVecKernel(const T* x, const T* w, float eps, T* y, int64_t h) {
  AllowNextGrid();
  WaitForPriorGrid();
  constexpr int kPer = 16 / sizeof(T);
  __shared__ float scratch[32];
  const int vecs = static_cast<int>(h / kPer);
  const uint4* row = reinterpret_cast<const uint4*>(x + blockIdx.x * h);
  uint4 held[kMaxVecs];
  float sq = 0;
#pragma unroll
  for (int k = 0; k < kMaxVecs; ++k) {
    const int i = threadIdx.x + k * kThreads;
    if (i < vecs) {
      held[k] = row[i];
      const T* e = reinterpret_cast<const T*>(&held[k]);
#pragma unroll
      for (int u = 0; u < kPer; ++u) {
        const float v = ToF(e[u]);
        sq += v * v;
      }
    }
  }
  const float rstd = rsqrtf(BlockSum(sq, scratch) / static_cast<float>(h) + eps);
  const uint4* w4 = reinterpret_cast<const uint4*>(w);
  uint4* out = reinterpret_cast<uint4*>(y + blockIdx.x * h);
#pragma unroll
  for (int k = 0; k < kMaxVecs; ++k) {
    const int i = threadIdx.x + k * kThreads;
    if (i < vecs) {
      const uint4 wv = w4[i];
      const T* e = reinterpret_cast<const T*>(&held[k]);
      const T* we = reinterpret_cast<const T*>(&wv);
      uint4 o;
      T* oe = reinterpret_cast<T*>(&o);
#pragma unroll
      for (int u = 0; u < kPer; ++u) oe[u] = FromF<T>(ToF(we[u]) * (ToF(e[u]) * rstd));
      out[i] = o;
    }
  }
}

bool Aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

void LaunchRmsNorm(const Tensor& x, const Tensor& weight, float eps, Tensor& y, cudaStream_t stream) {
  const int64_t n = x.dim(0), h = x.dim(1);
  Require(weight.numel() == h && y.numel() == x.numel(), "RmsNorm", "shape mismatch");
  Require(weight.dtype() == x.dtype() && y.dtype() == x.dtype(), "RmsNorm", "x, weight and y must share a dtype");
  if (n == 0) return;
  const int64_t per = 16 / static_cast<int64_t>(DTypeBytes(x.dtype(), 1));
  const bool vec = h % per == 0 && h / per <= kThreads * kMaxVecs && Aligned16(x.raw()) && Aligned16(weight.raw()) &&
                   Aligned16(y.raw());
  BATON_DISPATCH_FLOAT(
      x.dtype(), "RmsNorm",
      if (vec) {
        LaunchChained("RmsNorm", RmsNormVecKernel<T>, dim3(static_cast<unsigned>(n)), dim3(kThreads), 0, stream,
                      static_cast<const T*>(x.raw()), static_cast<const T*>(weight.raw()), eps,
                      static_cast<T*>(y.raw()), h);
      } else {
        LaunchChained("RmsNorm", RmsNormKernel<T>, dim3(static_cast<unsigned>(n)), dim3(kThreads), 0, stream,
                      static_cast<const T*>(x.raw()), static_cast<const T*>(weight.raw()), eps,
                      static_cast<T*>(y.raw()), h);
      });
  CheckLaunch("RmsNorm");
}

}  // namespace baton::cuda
