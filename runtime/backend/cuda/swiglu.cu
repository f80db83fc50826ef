#include <algorithm>

#include "runtime/backend/cuda/chained_launch.cuh"
#include "runtime/backend/cuda/common.cuh"
#include "runtime/backend/cuda/pack.cuh"
#include "runtime/backend/cuda/swiglu.cuh"

namespace baton::cuda {
namespace {

constexpr int kThreads = 256;

// Rows along the grid's y, packs of W columns along x: no thread divides
// by F (a 64-bit division per element costs more than its memory traffic).
template <typename T, int W>
__global__ void SwiGluKernel(const T* gate_up, T* out, int64_t rows, int64_t f) {
  AllowNextGrid();
  WaitForPriorGrid();
  const int64_t packs = f / W;
  for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
    const T* gate = gate_up + r * 2 * f;
    const T* up = gate + f;
    T* o = out + r * f;
    for (int64_t c = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; c < packs;
         c += static_cast<int64_t>(gridDim.x) * blockDim.x) {
      const Pack<T, W> g = LoadPack<W>(gate + c * W), u = LoadPack<W>(up + c * W);
      Pack<T, W> y;
#pragma unroll
      for (int k = 0; k < W; ++k) {
        const float gv = ToF(g.v[k]);
        y.v[k] = FromF<T>((gv / (1.0f + expf(-gv))) * ToF(u.v[k]));
      }
      StorePack(o + c * W, y);
    }
  }
}

}  // namespace

void LaunchSwiGlu(const Tensor& gate_up, Tensor& out, cudaStream_t stream) {
  const int64_t rows = gate_up.dim(0), f = out.dim(1);
  Require(gate_up.dim(1) == 2 * f && out.dim(0) == rows, "SwiGlu", "gate_up must be [N, 2F], out [N, F]");
  Require(gate_up.dtype() == out.dtype(), "SwiGlu", "gate_up and out differ in dtype");
  if (rows * f == 0) return;
  BATON_DISPATCH_FLOAT(
      out.dtype(), "SwiGlu", const int width = PackWidthFor<T>(f, {gate_up.raw(), out.raw()}); BATON_DISPATCH_PACK(
          T, width, const int64_t packs = f / W;
          const dim3 grid(static_cast<unsigned>(std::min<int64_t>((packs + kThreads - 1) / kThreads, 1024)),
                          static_cast<unsigned>(std::min<int64_t>(rows, 65535)));
          LaunchChained("SwiGlu", SwiGluKernel<T, W>, dim3(grid), dim3(kThreads), 0, stream,
                        static_cast<const T*>(gate_up.raw()), static_cast<T*>(out.raw()), rows, f)));
  CheckLaunch("SwiGlu");
}

}  // namespace baton::cuda
