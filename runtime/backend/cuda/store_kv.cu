#include "runtime/backend/cuda/chained_launch.cuh"
#include "runtime/backend/cuda/common.cuh"
#include "runtime/backend/cuda/store_kv.cuh"

namespace baton::cuda {
namespace {

template <typename T>
__global__ void StoreKvKernel(const T* qkv, int64_t width, int64_t q_cols, int64_t kv_cols, const int32_t* slots,
                              int64_t num_slots, int64_t n, T* cache_k, T* cache_v) {
  AllowNextGrid();
  WaitForPriorGrid();
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n * kv_cols;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t token = i / kv_cols, c = i % kv_cols;
    const int64_t slot = slots[token];
    if (slot < 0 || slot >= num_slots) continue;
    const T* row = qkv + token * width + q_cols;
    cache_k[slot * kv_cols + c] = row[c];
    cache_v[slot * kv_cols + c] = row[kv_cols + c];
  }
}

}  // namespace

void CheckStoreKvArgs(const Tensor& qkv, const PagedAttentionBatch& batch, const AttentionShape& shape,
                      const Tensor& cache_k, const Tensor& cache_v, const char* op) {
  const int64_t n = qkv.dim(0), width = qkv.dim(1);
  const int64_t q_cols = static_cast<int64_t>(shape.num_heads) * shape.head_dim;
  const int64_t kv_cols = static_cast<int64_t>(shape.num_kv_heads) * shape.head_dim;
  Require(width >= q_cols + 2 * kv_cols, op, "qkv too narrow");
  Require(batch.slot_mapping.numel() == n && batch.slot_mapping.dtype() == DType::kI32, op,
          "slot_mapping must be I32 with one slot per token");
  Require(cache_k.dtype() == qkv.dtype() && cache_v.dtype() == qkv.dtype(), op, "cache dtype must match qkv");
  Require(cache_k.ndim() == 4 && cache_k.dim(1) == shape.block_size && cache_k.dim(2) * cache_k.dim(3) == kv_cols &&
              cache_v.numel() == cache_k.numel(),
          op, "cache must be [blocks, block_size, kv_heads, head_dim]");
}

void LaunchStoreKv(const Tensor& qkv, const PagedAttentionBatch& batch, const AttentionShape& shape, Tensor& cache_k,
                   Tensor& cache_v, cudaStream_t stream) {
  CheckStoreKvArgs(qkv, batch, shape, cache_k, cache_v, "StoreKv");
  const int64_t n = qkv.dim(0), width = qkv.dim(1);
  const int64_t q_cols = static_cast<int64_t>(shape.num_heads) * shape.head_dim;
  const int64_t kv_cols = static_cast<int64_t>(shape.num_kv_heads) * shape.head_dim;
  if (n * kv_cols == 0) return;
  BATON_DISPATCH_FLOAT(qkv.dtype(), "StoreKv",
                       LaunchChained("StoreKv", StoreKvKernel<T>, dim3(BlocksFor(n * kv_cols, 256)), dim3(256), 0,
                                     stream, static_cast<const T*>(qkv.raw()), width, q_cols, kv_cols,
                                     batch.slot_mapping.data<int32_t>(), cache_k.dim(0) * cache_k.dim(1), n,
                                     static_cast<T*>(cache_k.raw()), static_cast<T*>(cache_v.raw())));
  CheckLaunch("StoreKv");
}

}  // namespace baton::cuda
