#include "runtime/backend/cuda/common.cuh"
#include "runtime/backend/cuda/rope.cuh"

namespace baton::cuda {
namespace {

// One thread per (token, head, j < half): it owns the pair (j, j + half).
// The angle is float(position) * inv_freq in float32 with full-precision
// sincos (no fast math), as transformers computes it. `sin_sign` -1 rotates
// by the opposite angle: the backward (the rotation is orthogonal).
template <typename T>
__global__ void RopeKernel(T* qkv, int64_t width, const int32_t* positions, const float* inv_freq, int64_t n, int heads,
                           int head_dim, float sin_sign) {
  const int half = head_dim / 2;
  const int64_t total = n * heads * half;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int j = static_cast<int>(i % half);
    const int64_t rest = i / half;
    const int h = static_cast<int>(rest % heads);
    const int64_t token = rest / heads;
    float s, c;
    sincosf(static_cast<float>(positions[token]) * inv_freq[j], &s, &c);
    s *= sin_sign;  // exact: a sign flip
    T* x = qkv + token * width + static_cast<int64_t>(h) * head_dim;
    const float a = ToF(x[j]), b = ToF(x[j + half]);
    x[j] = FromF<T>(a * c - b * s);
    x[j + half] = FromF<T>(b * c + a * s);
  }
}

void LaunchRopeSigned(Tensor& qkv, const Tensor& positions, const Tensor& inv_freq, int num_heads, int num_kv_heads,
                      int head_dim, float sin_sign, const char* op, cudaStream_t stream) {
  const int64_t n = qkv.dim(0), width = qkv.dim(1);
  const int heads = num_heads + num_kv_heads;
  Require(head_dim % 2 == 0, op, "head_dim must be even");
  Require(inv_freq.numel() == head_dim / 2 && inv_freq.dtype() == DType::kF32, op,
          "inv_freq must be F32 with head_dim / 2 entries");
  Require(positions.numel() == n && positions.dtype() == DType::kI32, op, "positions must be I32 [N]");
  Require(width >= static_cast<int64_t>(heads) * head_dim, op, "qkv too narrow");
  const int64_t total = n * heads * (head_dim / 2);
  if (total == 0) return;
  BATON_DISPATCH_FLOAT(qkv.dtype(), op,
                       RopeKernel<T><<<BlocksFor(total, 256), 256, 0, stream>>>(
                           static_cast<T*>(qkv.raw()), width, positions.data<int32_t>(), inv_freq.data<float>(), n,
                           heads, head_dim, sin_sign));
  CheckLaunch(op);
}

}  // namespace

void LaunchRope(Tensor& qkv, const Tensor& positions, const Tensor& inv_freq, int num_heads, int num_kv_heads,
                int head_dim, cudaStream_t stream) {
  LaunchRopeSigned(qkv, positions, inv_freq, num_heads, num_kv_heads, head_dim, 1.0f, "Rope", stream);
}

void LaunchRopeBackward(Tensor& dqkv, const Tensor& positions, const Tensor& inv_freq, int num_heads, int num_kv_heads,
                        int head_dim, cudaStream_t stream) {
  LaunchRopeSigned(dqkv, positions, inv_freq, num_heads, num_kv_heads, head_dim, -1.0f, "RopeBackward", stream);
}

}  // namespace baton::cuda
