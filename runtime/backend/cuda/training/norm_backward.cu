#include "runtime/backend/cuda/common.cuh"
#include "runtime/backend/cuda/pack.cuh"
#include "runtime/backend/cuda/training/norm_backward.cuh"

namespace baton::cuda {
namespace {

constexpr int kThreads = 256;

// A block walks rows blockIdx.x, blockIdx.x + gridDim.x, ... For each row it
// recomputes the statistics (LayerNorm: mean, then the centred variance, as
// the forward; RMSNorm: mean of squares), then
//   xhat = (x - mean) * rstd,  gw = dy * w
//   dx = rstd * (gw - mean(gw) - xhat * mean(gw * xhat))   (RMSNorm: no mean(gw) term)
// which is the CPU reference's formula (for RMSNorm rewritten through xhat).
// The weight/bias gradients are column sums over rows: with `stage` each
// thread adds its own columns into shared memory (no other thread touches
// them, so no synchronisation) and the block flushes them with one
// atomicAdd per column at the end, instead of one per element per row on
// the same hot addresses. Without `stage` (rows too wide for shared memory)
// it falls back to per-element atomics.
template <typename T, bool kCentre>
__global__ void __launch_bounds__(kThreads) NormBackwardKernel(const T* x, const T* w, const T* dy, T* dx, float* dw,
                                                               float* db, float eps, int64_t n, int64_t h, bool stage) {
  extern __shared__ float staged[];  // [h] weight-gradient partials, then [h] bias-gradient partials
  __shared__ float scratch[32];
  float* stage_w = staged;
  float* stage_b = staged + h;
  if (stage) {
    for (int64_t j = threadIdx.x; j < h; j += blockDim.x) {
      stage_w[j] = 0.0f;
      if (db != nullptr) stage_b[j] = 0.0f;
    }
  }
  const float width = static_cast<float>(h);
  for (int64_t r = blockIdx.x; r < n; r += gridDim.x) {
    const T* row = x + r * h;
    const T* g = dy + r * h;
    T* out = dx + r * h;
    float mean = 0.0f;
    if constexpr (kCentre) {
      float sum = 0.0f;
      for (int64_t j = threadIdx.x; j < h; j += blockDim.x) sum += ToF(row[j]);
      mean = BlockSum(sum, scratch) / width;
    }
    float sq = 0.0f;
    for (int64_t j = threadIdx.x; j < h; j += blockDim.x) {
      const float d = ToF(row[j]) - mean;
      sq += d * d;
    }
    const float rstd = rsqrtf(BlockSum(sq, scratch) / width + eps);
    float sum_gw = 0.0f, sum_gw_xhat = 0.0f;
    for (int64_t j = threadIdx.x; j < h; j += blockDim.x) {
      const float xhat = (ToF(row[j]) - mean) * rstd;
      const float gj = ToF(g[j]);
      const float gw = gj * ToF(w[j]);
      sum_gw += gw;
      sum_gw_xhat += gw * xhat;
      if (stage) {
        stage_w[j] += gj * xhat;
        if (db != nullptr) stage_b[j] += gj;
      } else {
        atomicAdd(dw + j, gj * xhat);
        if (db != nullptr) atomicAdd(db + j, gj);
      }
    }
    float m1 = 0.0f;
    if constexpr (kCentre) m1 = BlockSum(sum_gw, scratch) / width;
    const float m2 = BlockSum(sum_gw_xhat, scratch) / width;
    // Each thread rereads only its own columns of g before writing them:
    // dx may alias dy.
    for (int64_t j = threadIdx.x; j < h; j += blockDim.x) {
      const float xhat = (ToF(row[j]) - mean) * rstd;
      const float gw = ToF(g[j]) * ToF(w[j]);
      out[j] = FromF<T>(rstd * (gw - m1 - xhat * m2));
    }
  }
  if (stage) {
    for (int64_t j = threadIdx.x; j < h; j += blockDim.x) {
      atomicAdd(dw + j, stage_w[j]);
      if (db != nullptr) atomicAdd(db + j, stage_b[j]);
    }
  }
}

// The same arithmetic for rows of at most kThreads * kPacks packs of W: each
// thread keeps its packs of x and dy in registers, so a row is read from
// memory once with 16-byte loads (the kernel above reads it four times, 2
// bytes at a time), and its columns' weight and bias gradient partials stay
// in registers until the one flush at the end.
template <typename T, bool kCentre, int W, int kPacks>
__global__ void __launch_bounds__(kThreads)
    NormBackwardPackedKernel(const T* x, const T* w, const T* dy, T* dx, float* dw, float* db, float eps, int64_t n,
                             int64_t h) {
  __shared__ float scratch[32];
  const int64_t packs = h / W;
  Pack<T, W> wp[kPacks];
  float part_w[kPacks][W] = {}, part_b[kPacks][W] = {};
#pragma unroll
  for (int k = 0; k < kPacks; ++k) {
    const int64_t i = threadIdx.x + static_cast<int64_t>(k) * kThreads;
    if (i < packs) wp[k] = LoadPack<W>(w + i * W);
  }
  const float width = static_cast<float>(h);
  for (int64_t r = blockIdx.x; r < n; r += gridDim.x) {
    Pack<T, W> xp[kPacks], gp[kPacks];
    float sum = 0.0f;
#pragma unroll
    for (int k = 0; k < kPacks; ++k) {
      const int64_t i = threadIdx.x + static_cast<int64_t>(k) * kThreads;
      if (i >= packs) continue;
      xp[k] = LoadPack<W>(x + r * h + i * W);
      gp[k] = LoadPack<W>(dy + r * h + i * W);
#pragma unroll
      for (int u = 0; u < W; ++u) sum += ToF(xp[k].v[u]);
    }
    float mean = 0.0f;
    if constexpr (kCentre) mean = BlockSum(sum, scratch) / width;
    float sq = 0.0f;
#pragma unroll
    for (int k = 0; k < kPacks; ++k) {
      if (threadIdx.x + static_cast<int64_t>(k) * kThreads >= packs) continue;
#pragma unroll
      for (int u = 0; u < W; ++u) {
        const float d = ToF(xp[k].v[u]) - mean;
        sq += d * d;
      }
    }
    const float rstd = rsqrtf(BlockSum(sq, scratch) / width + eps);
    float sum_gw = 0.0f, sum_gw_xhat = 0.0f;
#pragma unroll
    for (int k = 0; k < kPacks; ++k) {
      if (threadIdx.x + static_cast<int64_t>(k) * kThreads >= packs) continue;
#pragma unroll
      for (int u = 0; u < W; ++u) {
        const float xhat = (ToF(xp[k].v[u]) - mean) * rstd;
        const float gj = ToF(gp[k].v[u]);
        const float gw = gj * ToF(wp[k].v[u]);
        sum_gw += gw;
        sum_gw_xhat += gw * xhat;
        part_w[k][u] += gj * xhat;
        part_b[k][u] += gj;
      }
    }
    float m1 = 0.0f;
    if constexpr (kCentre) m1 = BlockSum(sum_gw, scratch) / width;
    const float m2 = BlockSum(sum_gw_xhat, scratch) / width;
    // dx may alias dy: this thread's columns of dy are already in registers.
#pragma unroll
    for (int k = 0; k < kPacks; ++k) {
      const int64_t i = threadIdx.x + static_cast<int64_t>(k) * kThreads;
      if (i >= packs) continue;
      Pack<T, W> out;
#pragma unroll
      for (int u = 0; u < W; ++u) {
        const float xhat = (ToF(xp[k].v[u]) - mean) * rstd;
        const float gw = ToF(gp[k].v[u]) * ToF(wp[k].v[u]);
        out.v[u] = FromF<T>(rstd * (gw - m1 - xhat * m2));
      }
      StorePack(dx + r * h + i * W, out);
    }
  }
#pragma unroll
  for (int k = 0; k < kPacks; ++k) {
    const int64_t i = threadIdx.x + static_cast<int64_t>(k) * kThreads;
    if (i >= packs) continue;
#pragma unroll
    for (int u = 0; u < W; ++u) {
      atomicAdd(dw + i * W + u, part_w[k][u]);
      if (db != nullptr) atomicAdd(db + i * W + u, part_b[k][u]);
    }
  }
}

int CurrentDeviceAttribute(cudaDeviceAttr attr, const char* op) {
  int device = 0, value = 0;
  if (cudaGetDevice(&device) != cudaSuccess || cudaDeviceGetAttribute(&value, attr, device) != cudaSuccess) {
    DieCuda(op, "cannot read the current device's attributes");
  }
  return value;
}

template <typename T, bool kCentre>
void LaunchTyped(const Tensor& x, const Tensor& weight, float eps, const Tensor& dy, Tensor& dx, Tensor& dweight,
                 float* db, const char* op, cudaStream_t stream) {
  const int64_t n = x.dim(0), h = x.dim(1);
  // Enough blocks to fill the GPU a few times over, each taking many rows
  // when N is large: the flush costs H atomics per block.
  const int64_t sms = CurrentDeviceAttribute(cudaDevAttrMultiProcessorCount, op);
  const unsigned blocks = static_cast<unsigned>(n < 4 * sms ? n : 4 * sms);
  const auto* xr = static_cast<const T*>(x.raw());
  const auto* wr = static_cast<const T*>(weight.raw());
  const auto* gr = static_cast<const T*>(dy.raw());
  auto* dxr = static_cast<T*>(dx.raw());
  auto* dwr = static_cast<float*>(dweight.raw());
  constexpr int kW = kFullPack<T>;
  const int64_t packs_per_thread = (h / kW + kThreads - 1) / kThreads;
  if (PackWidthFor<T>(h, {xr, wr, gr, dxr}) == kW && packs_per_thread <= 4) {
    if (packs_per_thread == 1) {
      NormBackwardPackedKernel<T, kCentre, kW, 1><<<blocks, kThreads, 0, stream>>>(xr, wr, gr, dxr, dwr, db, eps, n, h);
    } else if (packs_per_thread == 2) {
      NormBackwardPackedKernel<T, kCentre, kW, 2><<<blocks, kThreads, 0, stream>>>(xr, wr, gr, dxr, dwr, db, eps, n, h);
    } else {
      NormBackwardPackedKernel<T, kCentre, kW, 4><<<blocks, kThreads, 0, stream>>>(xr, wr, gr, dxr, dwr, db, eps, n, h);
    }
    return;
  }
  const size_t bytes = static_cast<size_t>(h) * sizeof(float) * (db != nullptr ? 2 : 1);
  const size_t max_bytes = static_cast<size_t>(CurrentDeviceAttribute(cudaDevAttrMaxSharedMemoryPerBlockOptin, op));
  const bool stage = bytes + 32 * sizeof(float) <= max_bytes;
  const size_t dynamic = stage ? bytes : 0;
  auto kernel = NormBackwardKernel<T, kCentre>;
  if (dynamic > 48 * 1024 && cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                  static_cast<int>(dynamic)) != cudaSuccess) {
    DieCuda(op, "cannot raise the kernel's dynamic shared memory limit");
  }
  kernel<<<blocks, kThreads, dynamic, stream>>>(xr, wr, gr, dxr, dwr, db, eps, n, h, stage);
}

void CheckShapes(const char* op, const Tensor& x, const Tensor& weight, const Tensor& dy, const Tensor& dx,
                 const Tensor& dweight) {
  Require(x.ndim() == 2, op, "x must be [N, H]");
  const int64_t h = x.dim(1);
  Require(weight.numel() == h, op, "weight must have H (x's columns) entries");
  Require(dy.numel() == x.numel() && dx.numel() == x.numel(), op, "dy and dx must be [N, H] like x");
  Require(weight.dtype() == x.dtype() && dy.dtype() == x.dtype() && dx.dtype() == x.dtype(), op,
          "x, weight, dy and dx must share a dtype");
  Require(dweight.dtype() == DType::kF32 && dweight.numel() == h, op, "dweight must be F32 with H entries");
}

}  // namespace

void LaunchLayerNormBackward(const Tensor& x, const Tensor& weight, float eps, const Tensor& dy, Tensor& dx,
                             Tensor& dweight, Tensor* dbias, cudaStream_t stream) {
  const char* op = "LayerNormBackward";
  CheckShapes(op, x, weight, dy, dx, dweight);
  const bool has_bias = dbias != nullptr && dbias->defined() && dbias->numel() > 0;
  Require(!has_bias || (dbias->dtype() == DType::kF32 && dbias->numel() == x.dim(1)), op,
          "dbias must be F32 with H entries");
  if (x.numel() == 0) return;
  float* db = has_bias ? static_cast<float*>(dbias->raw()) : nullptr;
  BATON_DISPATCH_FLOAT(x.dtype(), op, LaunchTyped<T, true>(x, weight, eps, dy, dx, dweight, db, op, stream));
  CheckLaunch(op);
}

void LaunchRmsNormBackward(const Tensor& x, const Tensor& weight, float eps, const Tensor& dy, Tensor& dx,
                           Tensor& dweight, cudaStream_t stream) {
  const char* op = "RmsNormBackward";
  CheckShapes(op, x, weight, dy, dx, dweight);
  if (x.numel() == 0) return;
  BATON_DISPATCH_FLOAT(x.dtype(), op, LaunchTyped<T, false>(x, weight, eps, dy, dx, dweight, nullptr, op, stream));
  CheckLaunch(op);
}

}  // namespace baton::cuda
