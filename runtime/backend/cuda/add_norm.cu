#include "runtime/backend/cuda/add_norm.cuh"
#include "runtime/backend/cuda/chained_launch.cuh"
#include "runtime/backend/cuda/common.cuh"

namespace baton::cuda {
namespace {

constexpr int kThreads = 256;
// Rows of at most kThreads * kMaxVecs 16-byte vectors stay in registers
// (8192 bf16 / 4096 f32 features); wider or unaligned rows take the scalar
// kernel.
constexpr int kMaxVecs = 4;

template <typename T, bool kRms>
__global__ void __launch_bounds__(kThreads)
    AddNormVecKernel(const T* x, T* residual, const T* w, const T* b, float eps, T* y, int64_t h) {
  AllowNextGrid();
  WaitForPriorGrid();
  constexpr int kPer = 16 / sizeof(T);
  __shared__ float scratch[32];
  const int vecs = static_cast<int>(h / kPer);
  const uint4* x4 = reinterpret_cast<const uint4*>(x + blockIdx.x * h);
  uint4* r4 = reinterpret_cast<uint4*>(residual + blockIdx.x * h);
  uint4 held[kMaxVecs];
  // Both loads of every vector first, then the adds: one memory latency.
  uint4 xs[kMaxVecs];
#pragma unroll
  for (int k = 0; k < kMaxVecs; ++k) {
    const int i = threadIdx.x + k * kThreads;
    if (i < vecs) {
      xs[k] = x4[i];
      held[k] = r4[i];
    }
  }
  float stat = 0;  // sum of squares (RMS) or sum (LayerNorm) of the rounded residual
#pragma unroll
  for (int k = 0; k < kMaxVecs; ++k) {
    const int i = threadIdx.x + k * kThreads;
    if (i < vecs) {
      T* e = reinterpret_cast<T*>(&held[k]);
      const T* a = reinterpret_cast<const T*>(&xs[k]);
#pragma unroll
      for (int u = 0; u < kPer; ++u) {
        e[u] = FromF<T>(ToF(e[u]) + ToF(a[u]));
        const float v = ToF(e[u]);
        stat += kRms ? v * v : v;
      }
      r4[i] = held[k];
    }
  }
  float mean = 0, rstd;
  if constexpr (kRms) {
    rstd = rsqrtf(BlockSum(stat, scratch) / static_cast<float>(h) + eps);
  } else {
    mean = BlockSum(stat, scratch) / static_cast<float>(h);
    float sq = 0;
#pragma unroll
    for (int k = 0; k < kMaxVecs; ++k) {
      if (threadIdx.x + k * kThreads < vecs) {
        const T* e = reinterpret_cast<const T*>(&held[k]);
#pragma unroll
        for (int u = 0; u < kPer; ++u) {
          const float d = ToF(e[u]) - mean;
          sq += d * d;
        }
      }
    }
    rstd = rsqrtf(BlockSum(sq, scratch) / static_cast<float>(h) + eps);
  }
  const uint4* w4 = reinterpret_cast<const uint4*>(w);
  const uint4* b4 = reinterpret_cast<const uint4*>(b);
  uint4* out = reinterpret_cast<uint4*>(y + blockIdx.x * h);
#pragma unroll
  for (int k = 0; k < kMaxVecs; ++k) {
    const int i = threadIdx.x + k * kThreads;
    if (i < vecs) {
      const uint4 wv = w4[i];
      uint4 bv = {};
      if (!kRms && b != nullptr) bv = b4[i];
      const T* e = reinterpret_cast<const T*>(&held[k]);
      const T* we = reinterpret_cast<const T*>(&wv);
      const T* be = reinterpret_cast<const T*>(&bv);
      uint4 o;
      T* oe = reinterpret_cast<T*>(&o);
#pragma unroll
      for (int u = 0; u < kPer; ++u) {
        if constexpr (kRms) {
          oe[u] = FromF<T>(ToF(we[u]) * (ToF(e[u]) * rstd));  // as RmsNorm
        } else {
          const float v = (ToF(e[u]) - mean) * rstd * ToF(we[u]);  // as LayerNorm
          oe[u] = FromF<T>(b != nullptr ? v + ToF(be[u]) : v);
        }
      }
      out[i] = o;
    }
  }
}

// Any width or alignment: each thread adds its own strided elements and
// reads back only what it wrote, so no barrier is needed before the norm.
template <typename T, bool kRms>
__global__ void __launch_bounds__(kThreads)
    AddNormKernel(const T* x, T* residual, const T* w, const T* b, float eps, T* y, int64_t h) {
  AllowNextGrid();
  WaitForPriorGrid();
  __shared__ float scratch[32];
  const T* add = x + blockIdx.x * h;
  T* row = residual + blockIdx.x * h;
  T* out = y + blockIdx.x * h;
  float stat = 0;
  for (int64_t j = threadIdx.x; j < h; j += blockDim.x) {
    const T v = FromF<T>(ToF(row[j]) + ToF(add[j]));
    row[j] = v;
    stat += kRms ? ToF(v) * ToF(v) : ToF(v);
  }
  float mean = 0, rstd;
  if constexpr (kRms) {
    rstd = rsqrtf(BlockSum(stat, scratch) / static_cast<float>(h) + eps);
  } else {
    mean = BlockSum(stat, scratch) / static_cast<float>(h);
    float sq = 0;
    for (int64_t j = threadIdx.x; j < h; j += blockDim.x) {
      const float d = ToF(row[j]) - mean;
      sq += d * d;
    }
    rstd = rsqrtf(BlockSum(sq, scratch) / static_cast<float>(h) + eps);
  }
  for (int64_t j = threadIdx.x; j < h; j += blockDim.x) {
    if constexpr (kRms) {
      out[j] = FromF<T>(ToF(w[j]) * (ToF(row[j]) * rstd));
    } else {
      const float v = (ToF(row[j]) - mean) * rstd * ToF(w[j]);
      out[j] = FromF<T>(b != nullptr ? v + ToF(b[j]) : v);
    }
  }
}

bool Aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

template <typename T, bool kRms>
void LaunchTyped(bool vec, const void* x, void* residual, const void* w, const void* b, float eps, void* y, int64_t n,
                 int64_t h, cudaStream_t stream) {
  const auto* xt = static_cast<const T*>(x);
  const auto* wt = static_cast<const T*>(w);
  const auto* bt = static_cast<const T*>(b);
  auto* rt = static_cast<T*>(residual);
  auto* yt = static_cast<T*>(y);
  if (vec) {
    LaunchChained("AddNorm", AddNormVecKernel<T, kRms>, dim3(static_cast<unsigned>(n)), dim3(kThreads), 0, stream, xt,
                  rt, wt, bt, eps, yt, h);
  } else {
    LaunchChained("AddNorm", AddNormKernel<T, kRms>, dim3(static_cast<unsigned>(n)), dim3(kThreads), 0, stream, xt, rt,
                  wt, bt, eps, yt, h);
  }
}

}  // namespace

void LaunchAddNorm(NormOp op, const Tensor& x, Tensor& residual, const Tensor& weight, const Tensor& bias, float eps,
                   Tensor& normed, cudaStream_t stream) {
  Require(residual.ndim() == 2, "AddNorm", "residual must be [rows, features]");
  const int64_t n = residual.dim(0), h = residual.dim(1);
  const bool rms = op == NormOp::kRmsNorm;
  const bool has_bias = !rms && bias.defined() && bias.numel() > 0;
  Require(x.numel() == residual.numel() && normed.numel() == residual.numel() && weight.numel() == h, "AddNorm",
          "x, residual and normed must be [rows, features], weight [features]");
  Require(!has_bias || bias.numel() == h, "AddNorm", "bias must be [features]");
  Require(x.dtype() == residual.dtype() && weight.dtype() == residual.dtype() && normed.dtype() == residual.dtype() &&
              (!has_bias || bias.dtype() == residual.dtype()),
          "AddNorm", "x, residual, weight, bias and normed must share a dtype");
  Require(normed.raw() != residual.raw() && normed.raw() != x.raw(), "AddNorm", "normed must not alias its inputs");
  if (n == 0 || h == 0) return;
  const int64_t per = 16 / static_cast<int64_t>(DTypeBytes(residual.dtype(), 1));
  const bool vec = h % per == 0 && h / per <= kThreads * kMaxVecs && Aligned16(x.raw()) && Aligned16(residual.raw()) &&
                   Aligned16(weight.raw()) && Aligned16(normed.raw()) && (!has_bias || Aligned16(bias.raw()));
  const void* b = has_bias ? bias.raw() : nullptr;
  BATON_DISPATCH_FLOAT(
      residual.dtype(), "AddNorm",
      if (rms) {
        LaunchTyped<T, true>(vec, x.raw(), residual.raw(), weight.raw(), b, eps, normed.raw(), n, h, stream);
      } else {
        LaunchTyped<T, false>(vec, x.raw(), residual.raw(), weight.raw(), b, eps, normed.raw(), n, h, stream);
      });
  CheckLaunch("AddNorm");
}

}  // namespace baton::cuda
