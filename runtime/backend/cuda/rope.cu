#include <algorithm>

#include "runtime/backend/cuda/chained_launch.cuh"
#include "runtime/backend/cuda/common.cuh"
#include "runtime/backend/cuda/pack.cuh"
#include "runtime/backend/cuda/rope.cuh"

namespace baton::cuda {
namespace {

// One block per token (grid-stride): its first `half` threads form the
// token's angles float(position) * inv_freq[j] in float32 with
// full-precision sincos (no fast math), as transformers computes them, once
// for all heads; then each thread rotates W adjacent pairs (j, j + half) of
// one head at a time. `sin_sign` -1 rotates by the opposite angle: the
// backward (the rotation is orthogonal). Requires half <= kMaxHalf.
constexpr int kThreads = 128;
constexpr int kMaxHalf = 256;

template <typename T, int W>
__global__ void __launch_bounds__(kThreads)
    RopeKernel(T* qkv, int64_t width, const int32_t* positions, const float* inv_freq, int64_t n, int heads,
               int head_dim, float sin_sign) {
  AllowNextGrid();
  WaitForPriorGrid();
  __shared__ float cos_j[kMaxHalf], sin_j[kMaxHalf];
  const int half = head_dim / 2;
  const int packs_per_head = half / W;
  for (int64_t token = blockIdx.x; token < n; token += gridDim.x) {
    __syncthreads();  // the previous token's angles are no longer read
    for (int j = threadIdx.x; j < half; j += blockDim.x) {
      float s, c;
      sincosf(static_cast<float>(positions[token]) * inv_freq[j], &s, &c);
      cos_j[j] = c;
      sin_j[j] = s * sin_sign;  // exact: a sign flip
    }
    __syncthreads();
    T* row = qkv + token * width;
    for (int item = threadIdx.x; item < heads * packs_per_head; item += blockDim.x) {
      const int h = item / packs_per_head, j0 = (item % packs_per_head) * W;
      T* x = row + static_cast<int64_t>(h) * head_dim;
      Pack<T, W> lo = LoadPack<W>(x + j0), hi = LoadPack<W>(x + j0 + half);
#pragma unroll
      for (int u = 0; u < W; ++u) {
        const float c = cos_j[j0 + u], s = sin_j[j0 + u];
        const float a = ToF(lo.v[u]), b = ToF(hi.v[u]);
        lo.v[u] = FromF<T>(a * c - b * s);
        hi.v[u] = FromF<T>(b * c + a * s);
      }
      StorePack(x + j0, lo);
      StorePack(x + j0 + half, hi);
    }
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
  Require(head_dim / 2 <= kMaxHalf, op, "head_dim must be at most 2 * 256");
  if (n * heads * head_dim == 0) return;
  // Packs need every head's halves aligned: half and the row width divide
  // by the pack, and the base is 16-byte aligned.
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(n, 65535LL * 16));
  BATON_DISPATCH_FLOAT(
      qkv.dtype(), op, const int pack = PackWidthFor<T>(head_dim / 2, {qkv.raw()});
      const int packed = width % pack == 0 ? pack : 1; BATON_DISPATCH_PACK(
          T, packed,
          LaunchChained("Rope", RopeKernel<T, W>, dim3(blocks), dim3(kThreads), 0, stream, static_cast<T*>(qkv.raw()),
                        width, positions.data<int32_t>(), inv_freq.data<float>(), n, heads, head_dim, sin_sign)));
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
