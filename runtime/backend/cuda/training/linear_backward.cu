#include "runtime/backend/cuda/common.cuh"
#include "runtime/backend/cuda/cublas_check.h"
#include "runtime/backend/cuda/cuda_check.h"
#include "runtime/backend/cuda/training/linear_backward.cuh"

namespace baton::cuda {
namespace {

constexpr int kColumns = 32;  // columns of a block: one warp reads 32 consecutive values of a row
constexpr int kLanes = 8;     // rows a block reads at once

// db[c] += sum over rows of dy[r, c]. A block owns 32 columns and a chunk of
// rows; its 8 row lanes are combined in shared memory, then one atomicAdd
// per column per block.
template <typename T>
__global__ void ColumnSumKernel(const T* dy, float* db, int64_t m, int64_t n, int64_t rows_per_block) {
  __shared__ float partial[kLanes][kColumns + 1];
  const int64_t col = static_cast<int64_t>(blockIdx.x) * kColumns + threadIdx.x;
  const int64_t begin = static_cast<int64_t>(blockIdx.y) * rows_per_block;
  const int64_t end = begin + rows_per_block < m ? begin + rows_per_block : m;
  float sum = 0.0f;
  if (col < n) {
    for (int64_t r = begin + threadIdx.y; r < end; r += kLanes) sum += ToF(dy[r * n + col]);
  }
  partial[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.y == 0 && col < n) {
    float total = 0.0f;
#pragma unroll
    for (int k = 0; k < kLanes; ++k) total += partial[k][threadIdx.x];
    atomicAdd(db + col, total);
  }
}

Status LaunchColumnSum(const Tensor& dy, Tensor& db, cudaStream_t stream) {
  const int64_t m = dy.dim(0), n = dy.dim(1);
  // About 1024 blocks in all, each summing at least 64 rows of its columns.
  const int64_t column_tiles = (n + kColumns - 1) / kColumns;
  const int64_t wanted_chunks = column_tiles >= 1024 ? 1 : 1024 / column_tiles;
  int64_t rows_per_block = (m + wanted_chunks - 1) / wanted_chunks;
  if (rows_per_block < 64) rows_per_block = 64;
  const int64_t chunks = (m + rows_per_block - 1) / rows_per_block;  // <= wanted_chunks <= 1024
  const dim3 grid(static_cast<unsigned>(column_tiles), static_cast<unsigned>(chunks));
  const dim3 block(kColumns, kLanes);
  BATON_DISPATCH_FLOAT(dy.dtype(), "LinearBackward",
                       ColumnSumKernel<T><<<grid, block, 0, stream>>>(
                           static_cast<const T*>(dy.raw()), static_cast<float*>(db.raw()), m, n, rows_per_block));
  BATON_CUDA_CHECK(cudaGetLastError());
  return Status::Ok();
}

}  // namespace

Status RunLinearBackward(cublasHandle_t handle, const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx,
                         Tensor& dw, Tensor* db, cudaStream_t stream) {
  const char* op = "LinearBackward";
  Require(x.ndim() == 2 && w.ndim() == 2 && dy.ndim() == 2, op, "x, w and dy must be 2-D");
  const int64_t m = x.dim(0), k = x.dim(1), n = w.dim(0);
  Require(w.dim(1) == k, op, "w must be [N, K] with K == x's columns");
  Require(dy.dim(0) == m && dy.dim(1) == n, op, "dy must be [rows of x, rows of w]");
  Require(x.dtype() == w.dtype() && dy.dtype() == x.dtype(), op, "x, w and dy must share a dtype");
  Require(dw.dtype() == DType::kF32 && dw.ndim() == 2 && dw.dim(0) == n && dw.dim(1) == k, op, "dw must be F32 [N, K]");
  const bool has_dx = dx != nullptr && dx->defined();
  Require(!has_dx || (dx->ndim() == 2 && dx->dim(0) == m && dx->dim(1) == k && dx->dtype() == x.dtype()), op,
          "dx must be [M, K] in x's dtype");
  const bool has_db = db != nullptr && db->defined() && db->numel() > 0;
  Require(!has_db || (db->dtype() == DType::kF32 && db->numel() == n), op, "db must be F32 [N]");
  Require(m < (1LL << 31) && n < (1LL << 31) && k < (1LL << 31), op, "dimension past int range");
  if (m == 0) return Status::Ok();
  BATON_CUBLAS_CHECK(cublasSetStream(handle, stream));
  const cudaDataType_t type = CudaDataType(x.dtype(), "LinearBackward");
  const int mi = static_cast<int>(m), ki = static_cast<int>(k), ni = static_cast<int>(n);
  const float one = 1.0f, zero = 0.0f;
  if (has_dx && k > 0) {
    if (n == 0) {
      BATON_CUDA_CHECK(cudaMemsetAsync(dx->raw(), 0, dx->nbytes(), stream));  // an empty sum
    } else {
      // Row-major dx[M,K] = dy[M,N] w[N,K] is column-major dx^T[K,M] =
      // w^T[K,N] dy^T[N,M], and row-major w, dy read column-major are
      // exactly w^T (K x N, ld K) and dy^T (N x M, ld N): no transposes.
      BATON_CUBLAS_CHECK(cublasGemmEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, ki, mi, ni, &one, w.raw(), type, ki, dy.raw(),
                                      type, ni, &zero, dx->raw(), type, ki, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    }
  }
  if (k > 0 && n > 0) {
    // Row-major dw[N,K] += dy^T[N,M] x[M,K] is column-major dw^T[K,N] +=
    // x^T[K,M] dy[M,N]: x read column-major is x^T (K x M, ld K); dy read
    // column-major is dy^T (N x M, ld N), transposed back by the op.
    BATON_CUBLAS_CHECK(cublasGemmEx(handle, CUBLAS_OP_N, CUBLAS_OP_T, ki, ni, mi, &one, x.raw(), type, ki, dy.raw(),
                                    type, ni, &one, dw.raw(), CUDA_R_32F, ki, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }
  if (has_db) BATON_RETURN_IF_ERROR(LaunchColumnSum(dy, *db, stream));
  return Status::Ok();
}

}  // namespace baton::cuda
