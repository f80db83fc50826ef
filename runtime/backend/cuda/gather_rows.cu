#include "runtime/backend/cuda/chained_launch.cuh"
#include "runtime/backend/cuda/common.cuh"
#include "runtime/backend/cuda/gather_rows.cuh"

namespace baton::cuda {
namespace {

template <typename T>
__global__ void GatherRowsKernel(const T* x, int64_t num_rows, int64_t width, const int32_t* rows, T* out) {
  AllowNextGrid();
  WaitForPriorGrid();
  const int64_t r = blockIdx.x;
  const int32_t src = rows[r];
  T* dst = out + r * width;
  const bool ok = src >= 0 && src < num_rows;
  for (int64_t j = threadIdx.x; j < width; j += blockDim.x) {
    dst[j] = ok ? x[static_cast<int64_t>(src) * width + j] : FromF<T>(__int_as_float(0x7fc00000));
  }
}

}  // namespace

void LaunchGatherRows(const Tensor& x, const Tensor& rows, Tensor& out, cudaStream_t stream) {
  const int64_t r = rows.numel(), width = x.dim(1);
  Require(rows.dtype() == DType::kI32, "GatherRows", "rows must be I32");
  Require(out.ndim() == 2 && out.dim(0) == r && out.dim(1) == width, "GatherRows", "out must be [rows, features]");
  Require(out.dtype() == x.dtype(), "GatherRows", "out and x must share a dtype");
  if (r == 0) return;
  BATON_DISPATCH_FLOAT(
      x.dtype(), "GatherRows",
      LaunchChained("GatherRows", GatherRowsKernel<T>, dim3(static_cast<unsigned>(r)), dim3(256), 0, stream,
                    static_cast<const T*>(x.raw()), x.dim(0), width, rows.data<int32_t>(), static_cast<T*>(out.raw())));
  CheckLaunch("GatherRows");
}

}  // namespace baton::cuda
