#include "runtime/backend/cuda/common.cuh"
#include "runtime/backend/cuda/training/embedding_backward.cuh"

namespace baton::cuda {
namespace {

// One block per token row: coalesced reads of dy, atomics spread over the
// row's columns (distinct addresses unless ids repeat).
template <typename T>
__global__ void EmbeddingBackwardKernel(const int32_t* ids, const T* dy, float* dtable, int64_t rows, int64_t hidden) {
  const int64_t n = blockIdx.x;
  const int32_t id = ids[n];
  if (id < 0 || id >= rows) return;
  const T* src = dy + n * hidden;
  float* dst = dtable + static_cast<int64_t>(id) * hidden;
  for (int64_t j = threadIdx.x; j < hidden; j += blockDim.x) atomicAdd(dst + j, ToF(src[j]));
}

}  // namespace

void LaunchEmbeddingBackward(const Tensor& ids, const Tensor& dy, Tensor& dtable, cudaStream_t stream) {
  const char* op = "EmbeddingBackward";
  Require(ids.dtype() == DType::kI32, op, "ids must be I32");
  Require(dtable.ndim() == 2 && dtable.dtype() == DType::kF32, op, "dtable must be F32 [rows, hidden]");
  const int64_t n = ids.numel(), hidden = dtable.dim(1);
  Require(dy.ndim() == 2 && dy.dim(0) == n && dy.dim(1) == hidden, op, "dy must be [N ids, hidden of dtable]");
  Require(n < (1LL << 31), op, "more ids than one launch's grid holds");
  if (n == 0 || hidden == 0) return;
  BATON_DISPATCH_FLOAT(dy.dtype(), op,
                       EmbeddingBackwardKernel<T><<<static_cast<unsigned>(n), 256, 0, stream>>>(
                           ids.data<int32_t>(), static_cast<const T*>(dy.raw()), static_cast<float*>(dtable.raw()),
                           dtable.dim(0), hidden));
  CheckLaunch(op);
}

}  // namespace baton::cuda
