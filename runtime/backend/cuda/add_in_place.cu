#include "runtime/backend/cuda/add_in_place.cuh"
#include "runtime/backend/cuda/common.cuh"

namespace baton::cuda {
namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void AddKernel(T* x, const T* y, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    x[i] = FromF<T>(ToF(x[i]) + ToF(y[i]));
  }
}

}  // namespace

void LaunchAddInPlace(Tensor& x, const Tensor& y, cudaStream_t stream) {
  Require(x.numel() == y.numel(), "AddInPlace", "x and y differ in size");
  Require(x.dtype() == y.dtype(), "AddInPlace", "x and y differ in dtype");
  const int64_t n = x.numel();
  if (n == 0) return;
  BATON_DISPATCH_FLOAT(x.dtype(), "AddInPlace",
                       AddKernel<T><<<BlocksFor(n, kThreads), kThreads, 0, stream>>>(
                           static_cast<T*>(x.raw()), static_cast<const T*>(y.raw()), n));
  CheckLaunch("AddInPlace");
}

}  // namespace baton::cuda
