#include <string>

#include "runtime/backend/cuda/common.cuh"
#include "runtime/backend/cuda/gemv.cuh"
#include "runtime/backend/cuda/linear.cuh"

namespace baton::cuda {
namespace {

template <typename T>
__global__ void BroadcastRowsKernel(const T* bias, T* y, int64_t m, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < m * n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    y[i] = bias[i % n];
  }
}

}  // namespace

void RunLinear(cublasHandle_t handle, const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& y, bool allow_gemv,
               cudaStream_t stream, bool accumulate) {
  const int64_t m = x.dim(0), k = x.dim(1), n = w.dim(0);
  Require(w.dim(1) == k, "Linear", "w must be [out, in] with in == x's columns");
  Require(y.ndim() == 2 && y.dim(0) == m && y.dim(1) == n, "Linear", "y must be [rows of x, out]");
  Require(x.dtype() == w.dtype() && y.dtype() == x.dtype(), "Linear", "x, w and y must share a dtype");
  Require(m < (1LL << 31) && n < (1LL << 31) && k < (1LL << 31), "Linear", "dimension past int range");
  const bool has_bias = bias.defined() && bias.numel() > 0;
  Require(!has_bias || (bias.numel() == n && bias.dtype() == y.dtype()), "Linear", "bias must be [out] of y's dtype");
  Require(!(accumulate && has_bias), "Linear", "an accumulating product takes no bias");
  if (m == 0 || n == 0) return;
  if (allow_gemv && k > 0 && GemvApplies(x, w)) {
    GemvFusion fusion;
    if (accumulate) fusion.epilogue = LinearEpilogue::kAccumulate;
    LaunchGemv(x, w, has_bias ? bias : Tensor(), y, stream, fusion);
    return;
  }
  if (has_bias) {
    BATON_DISPATCH_FLOAT(y.dtype(), "Linear",
                         BroadcastRowsKernel<T><<<BlocksFor(m * n, 256), 256, 0, stream>>>(
                             static_cast<const T*>(bias.raw()), static_cast<T*>(y.raw()), m, n));
    CheckLaunch("Linear bias");
  }
  // Row-major y[M,N] = x[M,K] w[N,K]^T is column-major y^T[N,M] = w^T x^T:
  // w read as a column-major K x N matrix, transposed; x as K x M.
  const float alpha = 1.0f, beta = has_bias || accumulate ? 1.0f : 0.0f;
  const cudaDataType_t type = CudaDataType(x.dtype(), "Linear");
  const int ld = static_cast<int>(k > 0 ? k : 1);  // cuBLAS wants ld >= 1 even for K = 0
  const cublasStatus_t st = cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(n), static_cast<int>(m),
                                         static_cast<int>(k), &alpha, w.raw(), type, ld, x.raw(), type, ld, &beta,
                                         y.raw(), type, static_cast<int>(n), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  if (st != CUBLAS_STATUS_SUCCESS) {
    const std::string what = std::string("cublasGemmEx failed: ") + cublasGetStatusName(st) +
                             " for M=" + std::to_string(m) + " N=" + std::to_string(n) + " K=" + std::to_string(k);
    DieCuda("Linear", what.c_str());
  }
}

}  // namespace baton::cuda
