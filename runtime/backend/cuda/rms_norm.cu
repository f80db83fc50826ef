#include "runtime/backend/cuda/common.cuh"
#include "runtime/backend/cuda/rms_norm.cuh"

namespace baton::cuda {
namespace {

// One block per row; statistics in float32.
constexpr int kThreads = 256;

template <typename T>
__global__ void __launch_bounds__(kThreads) RmsNormKernel(const T* x, const T* w, float eps, T* y, int64_t h) {
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

}  // namespace

void LaunchRmsNorm(const Tensor& x, const Tensor& weight, float eps, Tensor& y, cudaStream_t stream) {
  const int64_t n = x.dim(0), h = x.dim(1);
  Require(weight.numel() == h && y.numel() == x.numel(), "RmsNorm", "shape mismatch");
  Require(weight.dtype() == x.dtype() && y.dtype() == x.dtype(), "RmsNorm", "x, weight and y must share a dtype");
  if (n == 0) return;
  BATON_DISPATCH_FLOAT(
      x.dtype(), "RmsNorm",
      RmsNormKernel<T><<<static_cast<unsigned>(n), kThreads, 0, stream>>>(
          static_cast<const T*>(x.raw()), static_cast<const T*>(weight.raw()), eps, static_cast<T*>(y.raw()), h));
  CheckLaunch("RmsNorm");
}

}  // namespace baton::cuda
