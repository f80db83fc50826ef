#include "runtime/backend/cuda/add_in_place.cuh"
#include "runtime/backend/cuda/chained_launch.cuh"
#include "runtime/backend/cuda/common.cuh"
#include "runtime/backend/cuda/pack.cuh"

namespace baton::cuda {
namespace {

constexpr int kThreads = 256;

template <typename T, int W>
__global__ void AddKernel(T* x, const T* y, int64_t packs) {
  AllowNextGrid();
  WaitForPriorGrid();
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < packs;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    Pack<T, W> a = LoadPack<W>(x + i * W);
    const Pack<T, W> b = LoadPack<W>(y + i * W);
#pragma unroll
    for (int k = 0; k < W; ++k) a.v[k] = FromF<T>(ToF(a.v[k]) + ToF(b.v[k]));
    StorePack(x + i * W, a);
  }
}

}  // namespace

void LaunchAddInPlace(Tensor& x, const Tensor& y, cudaStream_t stream) {
  Require(x.numel() == y.numel(), "AddInPlace", "x and y differ in size");
  Require(x.dtype() == y.dtype(), "AddInPlace", "x and y differ in dtype");
  const int64_t n = x.numel();
  if (n == 0) return;
  BATON_DISPATCH_FLOAT(
      x.dtype(), "AddInPlace", const int width = PackWidthFor<T>(n, {x.raw(), y.raw()});
      BATON_DISPATCH_PACK(T, width,
                          LaunchChained("AddInPlace", AddKernel<T, W>, dim3(BlocksFor(n / W, kThreads)), dim3(kThreads),
                                        0, stream, static_cast<T*>(x.raw()), static_cast<const T*>(y.raw()), n / W)));
  CheckLaunch("AddInPlace");
}

}  // namespace baton::cuda
