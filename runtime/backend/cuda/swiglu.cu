#include "runtime/backend/cuda/common.cuh"
#include "runtime/backend/cuda/swiglu.cuh"

namespace baton::cuda {
namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void SwiGluKernel(const T* gate_up, T* out, int64_t rows, int64_t f) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < rows * f;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / f, c = i % f;
    const float g = ToF(gate_up[r * 2 * f + c]);
    const float u = ToF(gate_up[r * 2 * f + f + c]);
    out[i] = FromF<T>((g / (1.0f + expf(-g))) * u);
  }
}

}  // namespace

void LaunchSwiGlu(const Tensor& gate_up, Tensor& out, cudaStream_t stream) {
  const int64_t rows = gate_up.dim(0), f = out.dim(1);
  Require(gate_up.dim(1) == 2 * f && out.dim(0) == rows, "SwiGlu", "gate_up must be [N, 2F], out [N, F]");
  Require(gate_up.dtype() == out.dtype(), "SwiGlu", "gate_up and out differ in dtype");
  if (rows * f == 0) return;
  BATON_DISPATCH_FLOAT(out.dtype(), "SwiGlu",
                       SwiGluKernel<T><<<BlocksFor(rows * f, kThreads), kThreads, 0, stream>>>(
                           static_cast<const T*>(gate_up.raw()), static_cast<T*>(out.raw()), rows, f));
  CheckLaunch("SwiGlu");
}

}  // namespace baton::cuda
