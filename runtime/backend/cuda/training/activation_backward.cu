#include <algorithm>
#include <cmath>

#include "runtime/backend/cuda/common.cuh"
#include "runtime/backend/cuda/pack.cuh"
#include "runtime/backend/cuda/training/activation_backward.cuh"

namespace baton::cuda {
namespace {

constexpr int kThreads = 256;

// d/dv gelu_new(v) = 0.5(1 + t) + 0.5 v (1 - t^2) k (1 + 3 * 0.044715 v^2),
// t = tanh(k (v + 0.044715 v^3)), in the CPU reference's order.
template <typename T>
__global__ void GeluNewBackwardKernel(const T* x, const T* dy, T* dx, float k, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float v = ToF(x[i]);
    const float t = tanhf(k * (v + 0.044715f * v * v * v));
    const float du = k * (1.0f + 3.0f * 0.044715f * v * v);
    dx[i] = FromF<T>(ToF(dy[i]) * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * du));
  }
}

// Blocks walk rows along y and packs of W columns along x, so no thread
// divides by F (a 64-bit division per element costs more than the
// element's memory traffic). Each thread reads gate, up and dout of its
// columns, then writes the pairs (dgate, dup).
template <typename T, int W>
__global__ void SwiGluBackwardKernel(const T* gate_up, const T* dout, T* dgate_up, int64_t rows, int64_t f) {
  const int64_t packs = f / W;
  for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
    const T* gu = gate_up + r * 2 * f;
    const T* d = dout + r * f;
    T* dgu = dgate_up + r * 2 * f;
    for (int64_t c = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; c < packs;
         c += static_cast<int64_t>(gridDim.x) * blockDim.x) {
      const Pack<T, W> gate = LoadPack<W>(gu + c * W), up = LoadPack<W>(gu + f + c * W), g = LoadPack<W>(d + c * W);
      Pack<T, W> dgate, dup;
#pragma unroll
      for (int k = 0; k < W; ++k) {
        const float gv = ToF(gate.v[k]), uv = ToF(up.v[k]), dv = ToF(g.v[k]);
        const float s = 1.0f / (1.0f + expf(-gv));
        const float silu = gv * s;
        dup.v[k] = FromF<T>(dv * silu);
        dgate.v[k] = FromF<T>(dv * uv * s * (1.0f + gv * (1.0f - s)));
      }
      StorePack(dgu + f + c * W, dup);
      StorePack(dgu + c * W, dgate);
    }
  }
}

}  // namespace

void LaunchGeluNewBackward(const Tensor& x, const Tensor& dy, Tensor& dx, cudaStream_t stream) {
  const int64_t n = x.numel();
  Require(dy.numel() == n && dx.numel() == n, "GeluNewBackward", "x, dy and dx must have the same number of elements");
  Require(dy.dtype() == x.dtype() && dx.dtype() == x.dtype(), "GeluNewBackward", "x, dy and dx must share a dtype");
  if (n == 0) return;
  // sqrt(2/pi) formed as the CPU reference forms it (float division, float sqrt).
  const float k = std::sqrt(2.0f / static_cast<float>(M_PI));
  BATON_DISPATCH_FLOAT(
      x.dtype(), "GeluNewBackward",
      GeluNewBackwardKernel<T><<<BlocksFor(n, kThreads), kThreads, 0, stream>>>(
          static_cast<const T*>(x.raw()), static_cast<const T*>(dy.raw()), static_cast<T*>(dx.raw()), k, n));
  CheckLaunch("GeluNewBackward");
}

void LaunchSwiGluBackward(const Tensor& gate_up, const Tensor& dout, Tensor& dgate_up, cudaStream_t stream) {
  Require(gate_up.ndim() == 2 && dout.ndim() == 2, "SwiGluBackward", "gate_up must be [N, 2F], dout [N, F]");
  const int64_t rows = gate_up.dim(0), f = dout.dim(1);
  Require(gate_up.dim(1) == 2 * f && dout.dim(0) == rows, "SwiGluBackward", "gate_up must be [N, 2F], dout [N, F]");
  Require(dgate_up.numel() == gate_up.numel(), "SwiGluBackward", "dgate_up must be [N, 2F] like gate_up");
  Require(dout.dtype() == gate_up.dtype() && dgate_up.dtype() == gate_up.dtype(), "SwiGluBackward",
          "gate_up, dout and dgate_up must share a dtype");
  if (rows * f == 0) return;
  BATON_DISPATCH_FLOAT(
      gate_up.dtype(), "SwiGluBackward",
      const int width = PackWidthFor<T>(f, {gate_up.raw(), dout.raw(), dgate_up.raw()});
      BATON_DISPATCH_PACK(
          T, width, const int64_t packs = f / W;
          const dim3 grid(static_cast<unsigned>(std::min<int64_t>((packs + kThreads - 1) / kThreads, 1024)),
                          static_cast<unsigned>(std::min<int64_t>(rows, 65535)));
          SwiGluBackwardKernel<T, W><<<grid, kThreads, 0, stream>>>(
              static_cast<const T*>(gate_up.raw()), static_cast<const T*>(dout.raw()),
              static_cast<T*>(dgate_up.raw()), rows, f)));
  CheckLaunch("SwiGluBackward");
}

}  // namespace baton::cuda
