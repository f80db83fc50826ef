#include <cmath>

#include "runtime/backend/cuda/common.cuh"
#include "runtime/backend/cuda/training/optimizer_kernels.cuh"

namespace baton::cuda {
namespace {

constexpr int kThreads = 256;
constexpr unsigned kMaxReduceBlocks = 1024;  // one atomicAdd per block

// The explicit round-to-nearest intrinsics keep nvcc from fusing a multiply
// and an add into an FMA (its default): the CPU reference rounds after every
// operation, and this update must match it bit for bit. The clipping
// coefficient is applied as the gradient is read, and the new value is
// also written rounded to the compute dtype C when `copy` is given: both
// were passes of their own over the whole model (Scale, then Convert).
template <typename C>
__global__ void AdamWKernel(float* p, const float* g, float* m, float* v, C* copy, AdamWStepArgs a, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float gi = __fmul_rn(g[i], a.grad_scale);
    float pi = __fmul_rn(p[i], a.decay);
    const float mi = __fadd_rn(m[i], __fmul_rn(__fsub_rn(gi, m[i]), a.one_minus_beta1));
    const float vi = __fadd_rn(__fmul_rn(v[i], a.beta2), __fmul_rn(__fmul_rn(a.one_minus_beta2, gi), gi));
    const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), a.bias_correction2_sqrt), a.eps);
    pi = __fsub_rn(pi, __fmul_rn(a.step_size, __fdiv_rn(mi, denom)));
    p[i] = pi;
    if (copy != nullptr) copy[i] = FromF<C>(pi);
    m[i] = mi;
    v[i] = vi;
  }
}

__device__ __forceinline__ double WarpSumDouble(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__global__ void __launch_bounds__(kThreads) SumSquaresKernel(const float* x, int64_t n, double* out) {
  __shared__ double warp_sums[kThreads / 32];
  double sum = 0.0;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const double v = x[i];
    sum += v * v;
  }
  sum = WarpSumDouble(sum);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) warp_sums[warp] = sum;
  __syncthreads();
  if (warp == 0) {
    sum = lane < kThreads / 32 ? warp_sums[lane] : 0.0;
    sum = WarpSumDouble(sum);
    if (lane == 0) atomicAdd(out, sum);
  }
}

}  // namespace

AdamWStepArgs MakeAdamWStepArgs(double lr, double beta1, double beta2, double eps, double weight_decay, int64_t step,
                                float grad_scale) {
  const double t = static_cast<double>(step);
  AdamWStepArgs a;
  a.decay = static_cast<float>(1.0 - lr * weight_decay);
  a.one_minus_beta1 = static_cast<float>(1.0 - beta1);
  a.beta2 = static_cast<float>(beta2);
  a.one_minus_beta2 = static_cast<float>(1.0 - beta2);
  a.step_size = static_cast<float>(lr / (1.0 - std::pow(beta1, t)));
  a.bias_correction2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(beta2, t)));
  a.eps = static_cast<float>(eps);
  a.grad_scale = static_cast<float>(grad_scale);
  return a;
}

void LaunchAdamWStep(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq, const AdamWStepArgs& args,
                     Tensor* compute_copy, cudaStream_t stream) {
  const char* op = "AdamWStep";
  const int64_t n = param.numel();
  Require(param.dtype() == DType::kF32 && grad.dtype() == DType::kF32 && exp_avg.dtype() == DType::kF32 &&
              exp_avg_sq.dtype() == DType::kF32,
          op, "param, grad, exp_avg and exp_avg_sq must be F32");
  Require(grad.numel() == n && exp_avg.numel() == n && exp_avg_sq.numel() == n, op,
          "param, grad, exp_avg and exp_avg_sq must have the same number of elements");
  const bool copies = compute_copy != nullptr && compute_copy->defined();
  Require(!copies || compute_copy->numel() == n, op, "compute_copy must have param's number of elements");
  if (n == 0) return;
  float* p = static_cast<float*>(param.raw());
  const float* g = static_cast<const float*>(grad.raw());
  float* m = static_cast<float*>(exp_avg.raw());
  float* v = static_cast<float*>(exp_avg_sq.raw());
  const unsigned blocks = BlocksFor(n, kThreads);
  if (!copies) {
    AdamWKernel<float><<<blocks, kThreads, 0, stream>>>(p, g, m, v, nullptr, args, n);
  } else {
    BATON_DISPATCH_FLOAT(compute_copy->dtype(), op,
                         AdamWKernel<T><<<blocks, kThreads, 0, stream>>>(p, g, m, v,
                                                                         static_cast<T*>(compute_copy->raw()), args, n));
  }
  CheckLaunch(op);
}

void LaunchSumSquares(const Tensor& x, double* device_out, cudaStream_t stream) {
  Require(x.dtype() == DType::kF32, "SumSquares", "x must be F32");
  Require(device_out != nullptr, "SumSquares", "device_out is null");
  const int64_t n = x.numel();
  if (n == 0) return;
  unsigned blocks = BlocksFor(n, kThreads);
  if (blocks > kMaxReduceBlocks) blocks = kMaxReduceBlocks;
  SumSquaresKernel<<<blocks, kThreads, 0, stream>>>(static_cast<const float*>(x.raw()), n, device_out);
  CheckLaunch("SumSquares");
}

}  // namespace baton::cuda
