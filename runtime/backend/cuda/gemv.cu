#include "runtime/backend/cuda/chained_launch.cuh"
#include "runtime/backend/cuda/common.cuh"
#include "runtime/backend/cuda/gemv.cuh"
#include "runtime/backend/cuda/pack.cuh"

namespace baton::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kInFlight = 4;  // 16-byte weight loads a lane issues before it uses them

// One warp per output column n (a row of w): the lanes stride along K in
// 8-element packs, kInFlight packs a lane per round (all requested before
// any is used), and keep one fp32 partial dot product per row of x; a warp
// sum finishes them. The first round is requested before WaitForPriorGrid,
// so under a chained launch it overlaps the kernel that produces x (no
// kernel writes weights). x (M x K, a few KB) stays in L1 across the warps
// of an SM.
template <typename T, int M, bool kChecked>
__device__ __forceinline__ void AccumulateRound(const T* x, int64_t k, int64_t p, int64_t packs,
                                                const Pack<T, 8> (&wp)[kInFlight], float (&acc)[M]) {
#pragma unroll
  for (int j = 0; j < kInFlight; ++j) {
    if (kChecked && p + 32 * j >= packs) break;
#pragma unroll
    for (int m = 0; m < M; ++m) {
      const Pack<T, 8> xp = LoadPack<8>(x + m * k + (p + 32 * j) * 8);
#pragma unroll
      for (int u = 0; u < 8; ++u) acc[m] += ToF(wp[j].v[u]) * ToF(xp.v[u]);
    }
  }
}

template <typename T, int M>
__global__ void __launch_bounds__(kThreads) GemvKernel(const T* __restrict__ x, const T* __restrict__ w,
                                                       const T* __restrict__ bias, T* __restrict__ y, int64_t n,
                                                       int64_t k) {
  constexpr int W = 8;
  AllowNextGrid();
  const int64_t col = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const int64_t packs = k / W;
  const T* wrow = w + (col < n ? col : 0) * k;
  Pack<T, W> wp[kInFlight];
#pragma unroll
  for (int j = 0; j < kInFlight; ++j) {
    if (lane + 32 * j < packs) wp[j] = LoadPack<W>(wrow + (lane + 32 * j) * W);
  }
  WaitForPriorGrid();
  if (col >= n) return;
  float acc[M] = {};
  AccumulateRound<T, M, true>(x, k, lane, packs, wp, acc);
  for (int64_t p = lane + 32 * kInFlight; p < packs; p += 32 * kInFlight) {
    if (p + 32 * (kInFlight - 1) < packs) {
#pragma unroll
      for (int j = 0; j < kInFlight; ++j) wp[j] = LoadPack<W>(wrow + (p + 32 * j) * W);
      AccumulateRound<T, M, false>(x, k, p, packs, wp, acc);
    } else {
#pragma unroll
      for (int j = 0; j < kInFlight; ++j) {
        if (p + 32 * j < packs) wp[j] = LoadPack<W>(wrow + (p + 32 * j) * W);
      }
      AccumulateRound<T, M, true>(x, k, p, packs, wp, acc);
    }
  }
#pragma unroll
  for (int m = 0; m < M; ++m) acc[m] = WarpSum(acc[m]);
  if (lane == 0) {
    const float b = bias != nullptr ? ToF(bias[col]) : 0.0f;
#pragma unroll
    for (int m = 0; m < M; ++m) y[m * n + col] = FromF<T>(acc[m] + b);
  }
}

template <typename T, int M>
void LaunchRows(const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& y, cudaStream_t stream) {
  const int64_t n = w.dim(0), k = w.dim(1);
  const unsigned blocks = static_cast<unsigned>((n + kWarps - 1) / kWarps);
  const T* b = bias.defined() && bias.numel() > 0 ? static_cast<const T*>(bias.raw()) : nullptr;
  LaunchChained("Linear (gemv)", GemvKernel<T, M>, dim3(blocks), dim3(kThreads), 0, stream,
                static_cast<const T*>(x.raw()), static_cast<const T*>(w.raw()), b, static_cast<T*>(y.raw()), n, k);
}

template <typename T>
void LaunchTyped(const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& y, cudaStream_t stream) {
  switch (x.dim(0)) {
    case 1:
      return LaunchRows<T, 1>(x, w, bias, y, stream);
    case 2:
      return LaunchRows<T, 2>(x, w, bias, y, stream);
    case 3:
      return LaunchRows<T, 3>(x, w, bias, y, stream);
    default:
      return LaunchRows<T, 4>(x, w, bias, y, stream);
  }
}

}  // namespace

bool GemvApplies(const Tensor& x, const Tensor& w) {
  const int64_t m = x.dim(0), k = x.dim(1);
  if (m < 1 || m > kGemvMaxRows || w.dim(0) >= (1LL << 31) * kWarps) return false;
  if (x.dtype() != DType::kBF16 && x.dtype() != DType::kF16) return false;
  return k % 8 == 0 && reinterpret_cast<uintptr_t>(x.raw()) % 16 == 0 && reinterpret_cast<uintptr_t>(w.raw()) % 16 == 0;
}

void LaunchGemv(const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& y, cudaStream_t stream) {
  Require(GemvApplies(x, w), "Linear", "LaunchGemv called outside GemvApplies");
  if (x.dtype() == DType::kBF16) {
    LaunchTyped<__nv_bfloat16>(x, w, bias, y, stream);
  } else {
    LaunchTyped<__half>(x, w, bias, y, stream);
  }
  CheckLaunch("Linear (gemv)");
}

}  // namespace baton::cuda
