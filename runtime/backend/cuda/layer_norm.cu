#include "runtime/backend/cuda/common.cuh"
#include "runtime/backend/cuda/layer_norm.cuh"

namespace baton::cuda {
namespace {

// One block per row; statistics in float32.
constexpr int kThreads = 256;

// Mean first, then the centred sum of squares (two passes over a row that
// stays in L1/L2): no cancellation for rows with a large mean.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    LayerNormKernel(const T* x, const T* w, const T* b, float eps, T* y, int64_t h) {
  __shared__ float scratch[32];
  const T* row = x + blockIdx.x * h;
  T* out = y + blockIdx.x * h;
  float sum = 0;
  for (int64_t j = threadIdx.x; j < h; j += blockDim.x) sum += ToF(row[j]);
  const float mean = BlockSum(sum, scratch) / static_cast<float>(h);
  float sq = 0;
  for (int64_t j = threadIdx.x; j < h; j += blockDim.x) {
    const float d = ToF(row[j]) - mean;
    sq += d * d;
  }
  const float rstd = rsqrtf(BlockSum(sq, scratch) / static_cast<float>(h) + eps);
  for (int64_t j = threadIdx.x; j < h; j += blockDim.x) {
    const float v = (ToF(row[j]) - mean) * rstd * ToF(w[j]);
    out[j] = FromF<T>(b ? v + ToF(b[j]) : v);
  }
}

}  // namespace

void LaunchLayerNorm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps, Tensor& y,
                     cudaStream_t stream) {
  const int64_t n = x.dim(0), h = x.dim(1);
  const bool has_bias = bias.defined() && bias.numel() > 0;
  Require(weight.numel() == h && y.numel() == x.numel(), "LayerNorm", "shape mismatch");
  Require(!has_bias || bias.numel() == h, "LayerNorm", "bias must be [hidden]");
  Require(weight.dtype() == x.dtype() && y.dtype() == x.dtype() && (!has_bias || bias.dtype() == x.dtype()),
          "LayerNorm", "x, weight, bias and y must share a dtype");
  if (n == 0) return;
  BATON_DISPATCH_FLOAT(x.dtype(), "LayerNorm",
                       LayerNormKernel<T><<<static_cast<unsigned>(n), kThreads, 0, stream>>>(
                           static_cast<const T*>(x.raw()), static_cast<const T*>(weight.raw()),
                           has_bias ? static_cast<const T*>(bias.raw()) : nullptr, eps, static_cast<T*>(y.raw()), h));
  CheckLaunch("LayerNorm");
}

}  // namespace baton::cuda
