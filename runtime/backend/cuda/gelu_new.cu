#include "runtime/backend/cuda/common.cuh"
#include "runtime/backend/cuda/gelu_new.cuh"

namespace baton::cuda {
namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void GeluNewKernel(T* x, int64_t n) {
  const float k = 0.7978845608028654f;  // sqrt(2/pi) rounded to float, as the CPU's std::sqrt(2/pi)
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float a = ToF(x[i]);
    x[i] = FromF<T>(0.5f * a * (1.0f + tanhf(k * (a + 0.044715f * a * a * a))));
  }
}

}  // namespace

void LaunchGeluNew(Tensor& x, cudaStream_t stream) {
  const int64_t n = x.numel();
  if (n == 0) return;
  BATON_DISPATCH_FLOAT(x.dtype(), "GeluNew",
                       GeluNewKernel<T><<<BlocksFor(n, kThreads), kThreads, 0, stream>>>(static_cast<T*>(x.raw()), n));
  CheckLaunch("GeluNew");
}

}  // namespace baton::cuda
