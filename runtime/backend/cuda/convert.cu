#include "runtime/backend/cuda/common.cuh"
#include "runtime/backend/cuda/convert.cuh"

namespace baton::cuda {
namespace {

template <typename S, typename D>
__global__ void ConvertKernel(const S* src, D* dst, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    dst[i] = FromF<D>(ToF(src[i]));
  }
}

template <typename S>
void LaunchFrom(const S* src, void* dst, DType dst_type, int64_t n, cudaStream_t stream) {
  constexpr int kThreads = 256;
  BATON_DISPATCH_FLOAT(dst_type, "Convert",
                       ConvertKernel<S, T>
                       <<<BlocksFor(n, kThreads), kThreads, 0, stream>>>(src, static_cast<T*>(dst), n));
}

}  // namespace

void LaunchConvert(const void* src, DType src_type, void* dst, DType dst_type, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  BATON_DISPATCH_FLOAT(src_type, "Convert", LaunchFrom(static_cast<const T*>(src), dst, dst_type, n, stream));
  CheckLaunch("Convert");
}

}  // namespace baton::cuda
