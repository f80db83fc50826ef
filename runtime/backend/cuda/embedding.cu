#include "runtime/backend/cuda/chained_launch.cuh"
#include "runtime/backend/cuda/common.cuh"
#include "runtime/backend/cuda/embedding.cuh"

namespace baton::cuda {
namespace {

// One block per token row.
template <typename T>
__global__ void EmbeddingKernel(const int32_t* ids, const T* table, int64_t vocab, int64_t hidden, T* out,
                                bool accumulate) {
  AllowNextGrid();
  WaitForPriorGrid();
  const int64_t n = blockIdx.x;
  const int32_t id = ids[n];
  T* dst = out + n * hidden;
  if (id < 0 || id >= vocab) {
    for (int64_t j = threadIdx.x; j < hidden; j += blockDim.x) dst[j] = FromF<T>(__int_as_float(0x7fc00000));
    return;
  }
  const T* src = table + static_cast<int64_t>(id) * hidden;
  for (int64_t j = threadIdx.x; j < hidden; j += blockDim.x) {
    dst[j] = accumulate ? FromF<T>(ToF(dst[j]) + ToF(src[j])) : src[j];
  }
}

}  // namespace

void LaunchEmbedding(const Tensor& ids, const Tensor& table, Tensor& out, bool accumulate, cudaStream_t stream) {
  const char* op = accumulate ? "AddEmbedding" : "Embedding";
  const int64_t n = ids.numel(), hidden = table.dim(1);
  Require(ids.dtype() == DType::kI32, op, "ids must be I32");
  Require(out.ndim() == 2 && out.dim(0) == n && out.dim(1) == hidden, op, "out must be [N, hidden]");
  Require(out.dtype() == table.dtype(), op, "out and table must share a dtype");
  if (n == 0) return;
  BATON_DISPATCH_FLOAT(table.dtype(), op,
                       LaunchChained("Embedding", EmbeddingKernel<T>, dim3(static_cast<unsigned>(n)), dim3(256), 0,
                                     stream, ids.data<int32_t>(), static_cast<const T*>(table.raw()), table.dim(0),
                                     hidden, static_cast<T*>(out.raw()), accumulate));
  CheckLaunch(op);
}

}  // namespace baton::cuda
