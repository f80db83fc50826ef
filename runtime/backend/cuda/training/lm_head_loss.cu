#include <algorithm>
#include <climits>
#include <cstdint>
#include <string>

#include "runtime/backend/cuda/common.cuh"
#include "runtime/backend/cuda/cuda_check.h"
#include "runtime/backend/cuda/training/lm_head_loss.cuh"

namespace baton::cuda {
namespace {

constexpr int kThreads = 512;
// The accumulator sits at the start of the workspace; the logits follow at
// this offset, which keeps them as aligned as the workspace itself.
constexpr size_t kHeaderBytes = 256;

struct LossAccumulator {
  double sum;                 // per-token losses of the call
  unsigned long long tokens;  // rows that counted
  unsigned int bad_row;       // smallest row with a target outside [0, V); UINT_MAX when none
};
static_assert(sizeof(LossAccumulator) <= kHeaderBytes, "the accumulator must fit before the logits");

// Folds one logit into a thread's running (max m, sum of exp(z - m)).
__device__ __forceinline__ void AddLogit(float& m, float& s, float z) {
  if (z > m) {
    s = s * expf(m - z) + 1.0f;  // m = -inf at the start: expf(-inf) = 0
    m = z;
  } else {
    s += expf(z - m);
  }
}

// Merges another (max, sum) pair; a side that saw no logit has m = -inf and
// contributes nothing. Float addition commutes, so the butterfly below
// leaves the same pair in every lane.
__device__ __forceinline__ void MergeStats(float& m, float& s, float m2, float s2) {
  const float mm = fmaxf(m, m2);
  if (mm == -INFINITY) return;  // neither side saw a logit
  s = s * expf(m - mm) + s2 * expf(m2 - mm);
  m = mm;
}

__device__ __forceinline__ void WarpMergeStats(float& m, float& s) {
  for (int o = 16; o > 0; o >>= 1) {
    const float m2 = __shfl_xor_sync(0xffffffffu, m, o);
    const float s2 = __shfl_xor_sync(0xffffffffu, s, o);
    MergeStats(m, s, m2, s2);
  }
}

// The row's (max, sum) in every thread; called once per block
// (blockDim.x a multiple of 32, at most 1024).
__device__ __forceinline__ void BlockMergeStats(float& m, float& s) {
  __shared__ float warp_m[32], warp_s[32];
  WarpMergeStats(m, s);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) {
    warp_m[warp] = m;
    warp_s[warp] = s;
  }
  __syncthreads();
  // Every warp reduces the per-warp pairs itself: no second barrier.
  const bool have = lane < static_cast<int>(blockDim.x >> 5);
  m = have ? warp_m[lane] : -INFINITY;
  s = have ? warp_s[lane] : 0.0f;
  WarpMergeStats(m, s);
}

template <typename T>
struct alignas(4 * sizeof(T)) Pack4 {
  T v[4];
};

// One block per row of the chunk. Reads the row's F32 logits, adds
// lse - z_target to the loss and, with kGrad, writes
// grad_scale * (softmax - onehot(target)) as T over the same row: the T row
// starts where the F32 row starts, so the GEMMs read it with a leading
// dimension of vocab * 4 / sizeof(T). For 16-bit T the write of element j
// covers bytes [2j, 2j + 2), i.e. F32 element j / 2 <= j: a tile is written
// only after a barrier that follows every thread's read of it, and later
// tiles lie beyond what it overwrites. kVec4 (vocab % 4 == 0, 16-byte aligned
// rows) moves 4 logits per access.
template <typename T, bool kVec4, bool kGrad>
__global__ void __launch_bounds__(kThreads)
    SoftmaxCrossEntropyRowsKernel(float* logits, const int32_t* targets, int64_t vocab, float grad_scale,
                                  LossAccumulator* acc, int64_t row0) {
  const int64_t row = blockIdx.x;
  float* z = logits + row * vocab;
  T* g = reinterpret_cast<T*>(z);
  const int32_t t = targets[row];
  if (t == kIgnoreIndex || t < 0 || t >= vocab) {  // the same for the whole block: no barrier is skipped
    if (t != kIgnoreIndex && threadIdx.x == 0) atomicMin(&acc->bad_row, static_cast<unsigned int>(row0 + row));
    if (kGrad) {
      for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) g[j] = FromF<T>(0.0f);
    }
    return;
  }
  // Loaded before the barrier inside BlockMergeStats, so before any write.
  const float z_t = threadIdx.x == 0 ? z[t] : 0.0f;

  float m = -INFINITY, s = 0.0f;
  if (kVec4) {
    const float4* z4 = reinterpret_cast<const float4*>(z);
    for (int64_t i = threadIdx.x; i < vocab / 4; i += blockDim.x) {
      const float4 v = z4[i];
      AddLogit(m, s, v.x);
      AddLogit(m, s, v.y);
      AddLogit(m, s, v.z);
      AddLogit(m, s, v.w);
    }
  } else {
    for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) AddLogit(m, s, z[j]);
  }
  BlockMergeStats(m, s);  // m = max over the row, s = sum of exp(z - m) >= 1
  if (threadIdx.x == 0) {
    atomicAdd(&acc->sum, static_cast<double>(m) + log(static_cast<double>(s)) - static_cast<double>(z_t));
    atomicAdd(&acc->tokens, 1ULL);
  }
  if (!kGrad) return;

  // d(grad_scale * (lse - z_t)) / dz_j = grad_scale * exp(z_j - m) / s - grad_scale * [j == t]
  const float scale = grad_scale / s;
  constexpr bool kNarrow = sizeof(T) < sizeof(float);
  const int64_t n = kVec4 ? vocab / 4 : vocab;
  const int64_t steps = (n + blockDim.x - 1) / blockDim.x;  // equal in every thread: the loop holds a barrier
  for (int64_t k = 0; k < steps; ++k) {
    const int64_t i = k * blockDim.x + threadIdx.x;
    const bool in = i < n;
    if (kVec4) {
      const float4 v = in ? reinterpret_cast<const float4*>(z)[i] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      float o[4] = {expf(v.x - m) * scale, expf(v.y - m) * scale, expf(v.z - m) * scale, expf(v.w - m) * scale};
      for (int c = 0; c < 4; ++c) {
        if (4 * i + c == t) o[c] -= grad_scale;
      }
      if (kNarrow) __syncthreads();
      if (in) {
        Pack4<T> p;
        for (int c = 0; c < 4; ++c) p.v[c] = FromF<T>(o[c]);
        reinterpret_cast<Pack4<T>*>(g)[i] = p;
      }
    } else {
      const float v = in ? z[i] : 0.0f;
      float o = expf(v - m) * scale;
      if (i == t) o -= grad_scale;
      if (kNarrow) __syncthreads();
      if (in) g[i] = FromF<T>(o);
    }
  }
}

template <typename T, bool kGrad>
void LaunchRowsOf(bool vec4, int rows, float* logits, const int32_t* targets, int64_t vocab, float grad_scale,
                  LossAccumulator* acc, int64_t row0, cudaStream_t stream) {
  if (vec4) {
    SoftmaxCrossEntropyRowsKernel<T, true, kGrad>
        <<<rows, kThreads, 0, stream>>>(logits, targets, vocab, grad_scale, acc, row0);
  } else {
    SoftmaxCrossEntropyRowsKernel<T, false, kGrad>
        <<<rows, kThreads, 0, stream>>>(logits, targets, vocab, grad_scale, acc, row0);
  }
}

Status Invalid(const std::string& what) { return Status::InvalidArgument("RunLmHeadCrossEntropy: " + what); }

Status GemmStatus(cublasStatus_t st, const char* which, int m, int n, int k) {
  if (st == CUBLAS_STATUS_SUCCESS) return Status::Ok();
  const std::string msg = std::string("RunLmHeadCrossEntropy: cublasGemmEx (") + which +
                          ") failed: " + cublasGetStatusName(st) + " for m=" + std::to_string(m) +
                          " n=" + std::to_string(n) + " k=" + std::to_string(k);
  return st == CUBLAS_STATUS_ALLOC_FAILED ? Status::ResourceExhausted(msg) : Status::Internal(msg);
}

bool OnGpu(const Tensor& t) { return t.raw() == nullptr || t.device() == Device::kCuda; }

}  // namespace

size_t LmHeadLossWorkspaceBytes(int64_t chunk_rows, int64_t vocab, DType /*dtype: T is written in place*/) {
  return kHeaderBytes + static_cast<size_t>(std::max<int64_t>(chunk_rows, 0)) *
                            static_cast<size_t>(std::max<int64_t>(vocab, 0)) * sizeof(float);
}

StatusOr<LossSum> RunLmHeadCrossEntropy(cublasHandle_t handle, const Tensor& x, const Tensor& head,
                                        const Tensor& targets, float grad_scale, Tensor* dx, Tensor* dhead_f32,
                                        Tensor& workspace, int64_t chunk_rows, cudaStream_t stream) {
  if (x.ndim() != 2 || head.ndim() != 2 || head.dim(1) != x.dim(1)) {
    return Invalid("x must be [N, H] and head [V, H], got x " + x.DebugString() + ", head " + head.DebugString());
  }
  const int64_t n = x.dim(0), h = x.dim(1), vocab = head.dim(0);
  const DType dtype = x.dtype();
  if (dtype != DType::kF32 && dtype != DType::kBF16 && dtype != DType::kF16) {
    return Invalid(std::string("x dtype must be F32, BF16 or F16, not ") + DTypeName(dtype));
  }
  if (head.dtype() != dtype) return Invalid("head " + head.DebugString() + " must share x's dtype " + DTypeName(dtype));
  if (targets.dtype() != DType::kI32 || targets.numel() != n) {
    return Invalid("targets must be [N = " + std::to_string(n) + "] I32, got " + targets.DebugString());
  }
  if (h < 1 || vocab < 1) return Invalid("hidden and vocab must be positive, got head " + head.DebugString());
  const bool backward = dx != nullptr && dx->defined();
  if (backward != (dhead_f32 != nullptr && dhead_f32->defined())) {
    return Invalid("dx and dhead_f32 must both be given (training) or both be null (loss only)");
  }
  if (backward) {
    if (dx->ndim() != 2 || dx->dim(0) != n || dx->dim(1) != h || dx->dtype() != dtype) {
      return Invalid("dx must be [N, H] of x's dtype like x " + x.DebugString() + ", got " + dx->DebugString());
    }
    if (dhead_f32->ndim() != 2 || dhead_f32->dim(0) != vocab || dhead_f32->dim(1) != h ||
        dhead_f32->dtype() != DType::kF32) {
      return Invalid("dhead_f32 must be F32 [V, H] like head " + head.DebugString() + ", got " +
                     dhead_f32->DebugString());
    }
  }
  if (!OnGpu(x) || !OnGpu(head) || !OnGpu(targets) || !OnGpu(workspace) || (backward && !OnGpu(*dx)) ||
      (backward && !OnGpu(*dhead_f32))) {
    return Invalid("every tensor must live on the GPU (x " + x.DebugString() + ", head " + head.DebugString() +
                   ", targets " + targets.DebugString() + ", workspace " + workspace.DebugString() + ")");
  }
  if (chunk_rows < 1) return Invalid("chunk_rows must be positive, got " + std::to_string(chunk_rows));
  // cuBLAS takes int sizes and leading dimensions (up to 2 * vocab for the 16-bit gradient).
  if (n > INT_MAX || h > INT_MAX || 2 * vocab > INT_MAX) {
    return Invalid("a dimension passes int range: x " + x.DebugString() + ", head " + head.DebugString());
  }
  if (n == 0) return LossSum{};
  const int64_t max_rows = std::min(chunk_rows, n);
  const size_t need = LmHeadLossWorkspaceBytes(max_rows, vocab, dtype);
  if (workspace.nbytes() < need) {
    return Invalid("workspace " + workspace.DebugString() + " holds " + std::to_string(workspace.nbytes()) +
                   " bytes; " + std::to_string(max_rows) + " rows of vocab " + std::to_string(vocab) + " need " +
                   std::to_string(need));
  }
  if (reinterpret_cast<uintptr_t>(workspace.raw()) % 16 != 0) return Invalid("workspace must be 16-byte aligned");
  cudaStream_t bound = nullptr;
  const cublasStatus_t got = cublasGetStream(handle, &bound);
  if (got != CUBLAS_STATUS_SUCCESS) {
    return Status::Internal(std::string("RunLmHeadCrossEntropy: cublasGetStream failed: ") + cublasGetStatusName(got));
  }
  if (bound != stream) return Invalid("the cuBLAS handle is bound to another stream than the one given");

  auto* acc = static_cast<LossAccumulator*>(workspace.raw());
  float* logits = reinterpret_cast<float*>(static_cast<char*>(workspace.raw()) + kHeaderBytes);
  BATON_CUDA_CHECK(cudaMemsetAsync(acc, 0, sizeof(LossAccumulator), stream));
  BATON_CUDA_CHECK(cudaMemsetAsync(&acc->bad_row, 0xFF, sizeof(acc->bad_row), stream));

  const cudaDataType_t type = CudaDataType(dtype, "LmHeadCrossEntropy");
  const size_t elem = DTypeBytes(dtype, 1);
  const int ih = static_cast<int>(h), iv = static_cast<int>(vocab);
  const int ld_grad = static_cast<int>(vocab * static_cast<int64_t>(sizeof(float) / elem));  // T row stride
  const bool vec4 = vocab % 4 == 0;
  const float one = 1.0f, zero = 0.0f;
  const auto* all_targets = static_cast<const int32_t*>(targets.raw());

  for (int64_t r0 = 0; r0 < n; r0 += chunk_rows) {
    const int rows = static_cast<int>(std::min(chunk_rows, n - r0));
    const void* x_chunk = static_cast<const char*>(x.raw()) + static_cast<size_t>(r0 * h) * elem;
    // Row-major logits [rows, V] = x_chunk [rows, H] . head [V, H]^T, i.e.
    // column-major logits^T (V x rows) = head^T . x_chunk^T.
    BATON_RETURN_IF_ERROR(
        GemmStatus(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, iv, rows, ih, &one, head.raw(), type, ih, x_chunk,
                                type, ih, &zero, logits, CUDA_R_32F, iv, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                   "logits", iv, rows, ih));

    if (backward) {
      BATON_DISPATCH_FLOAT(
          dtype, "LmHeadCrossEntropy",
          LaunchRowsOf<T, true>(vec4, rows, logits, all_targets + r0, vocab, grad_scale, acc, r0, stream));
    } else {  // nothing is written, so the storage type does not matter
      LaunchRowsOf<float, false>(vec4, rows, logits, all_targets + r0, vocab, grad_scale, acc, r0, stream);
    }
    BATON_CUDA_CHECK(cudaGetLastError());
    if (!backward) continue;

    // dx_chunk [rows, H] = dlogits [rows, V] . head [V, H]: column-major
    // dx^T (H x rows) = head^T (H x V as stored) . dlogits^T (V x rows, ld ld_grad).
    void* dx_chunk = static_cast<char*>(dx->raw()) + static_cast<size_t>(r0 * h) * elem;
    BATON_RETURN_IF_ERROR(
        GemmStatus(cublasGemmEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, ih, rows, iv, &one, head.raw(), type, ih, logits,
                                type, ld_grad, &zero, dx_chunk, type, ih, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                   "dx", ih, rows, iv));
    // dhead [V, H] += dlogits^T . x_chunk: column-major dhead^T (H x V) +=
    // x_chunk^T (H x rows as stored) . dlogits (rows x V: the stored V x rows transposed).
    BATON_RETURN_IF_ERROR(GemmStatus(
        cublasGemmEx(handle, CUBLAS_OP_N, CUBLAS_OP_T, ih, iv, rows, &one, x_chunk, type, ih, logits, type, ld_grad,
                     &one, dhead_f32->raw(), CUDA_R_32F, ih, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
        "dhead", ih, iv, rows));
  }

  // The one synchronisation of the call: the trainer needs the loss on the host.
  LossAccumulator host{};
  BATON_CUDA_CHECK(cudaMemcpyAsync(&host, acc, sizeof(host), cudaMemcpyDeviceToHost, stream));
  BATON_CUDA_CHECK(cudaStreamSynchronize(stream));
  if (host.bad_row != UINT_MAX) {
    int32_t value = 0;
    BATON_CUDA_CHECK(
        cudaMemcpyAsync(&value, all_targets + host.bad_row, sizeof(value), cudaMemcpyDeviceToHost, stream));
    BATON_CUDA_CHECK(cudaStreamSynchronize(stream));
    return Invalid("targets[" + std::to_string(host.bad_row) + "] = " + std::to_string(value) +
                   " is outside [0, vocab = " + std::to_string(vocab) + ") and is not kIgnoreIndex (" +
                   std::to_string(kIgnoreIndex) + ")");
  }
  LossSum out;
  out.sum = host.sum;
  out.tokens = static_cast<int64_t>(host.tokens);
  return out;
}

}  // namespace baton::cuda
