#include <algorithm>

#include "runtime/backend/cuda/chained_launch.cuh"
#include "runtime/backend/cuda/common.cuh"
#include "runtime/backend/cuda/pack.cuh"
#include "runtime/backend/cuda/rope.cuh"
#include "runtime/backend/cuda/rope_angles.cuh"
#include "runtime/backend/cuda/store_kv.cuh"

namespace baton::cuda {
namespace {

// One block per token (grid-stride): its first `half` threads form the
// token's angles (rope_angles.cuh) once for all heads; then each thread
// rotates W adjacent pairs (j, j + half) of one head at a time.
// `sin_sign` -1 rotates by the opposite angle: the backward (the rotation
// is orthogonal). With kStore the block also writes
// the token's rotated K and its V to the paged cache (StoreKv fused in:
// one kernel a layer fewer at decode). Requires half <= kMaxHalf.
constexpr int kThreads = 128;
constexpr int kMaxHalf = 256;

template <typename T>
struct RopeArgs {
  T* qkv;
  int64_t width;  // of a qkv row
  const int32_t* positions;
  const float* inv_freq;
  int64_t n;  // tokens
  int q_heads, kv_heads, head_dim;
  float sin_sign;
  // kStore only: the cache, [slots, kv_heads * head_dim] each.
  const int32_t* slots;
  int64_t num_slots;
  T* cache_k;
  T* cache_v;
};

template <typename T, int W, bool kStore>
__global__ void __launch_bounds__(kThreads) RopeKernel(const RopeArgs<T> a) {
  AllowNextGrid();
  WaitForPriorGrid();
  __shared__ float cos_j[kMaxHalf], sin_j[kMaxHalf];
  const int half = a.head_dim / 2;
  const int packs_per_head = half / W;
  const int heads = a.q_heads + a.kv_heads;
  const int64_t kv_cols = static_cast<int64_t>(a.kv_heads) * a.head_dim;
  for (int64_t token = blockIdx.x; token < a.n; token += gridDim.x) {
    __syncthreads();  // the previous token's angles are no longer read
    FormRopeAngles(static_cast<float>(a.positions[token]), a.inv_freq, half, cos_j, sin_j, a.sin_sign);
    __syncthreads();
    T* row = a.qkv + token * a.width;
    int64_t slot = -1;
    if constexpr (kStore) {
      slot = a.slots[token];
      if (slot >= a.num_slots) slot = -1;  // as StoreKv: an out-of-range slot is skipped
    }
    for (int item = threadIdx.x; item < heads * packs_per_head; item += blockDim.x) {
      const int h = item / packs_per_head, j0 = (item % packs_per_head) * W;
      T* x = row + static_cast<int64_t>(h) * a.head_dim;
      Pack<T, W> lo = LoadPack<W>(x + j0), hi = LoadPack<W>(x + j0 + half);
#pragma unroll
      for (int u = 0; u < W; ++u) {
        const float c = cos_j[j0 + u], s = sin_j[j0 + u];
        const float p = ToF(lo.v[u]), q = ToF(hi.v[u]);
        lo.v[u] = FromF<T>(RotatedLow(p, q, c, s));
        hi.v[u] = FromF<T>(RotatedHigh(p, q, c, s));
      }
      StorePack(x + j0, lo);
      StorePack(x + j0 + half, hi);
      if (kStore && h >= a.q_heads && slot >= 0) {
        T* k = a.cache_k + slot * kv_cols + static_cast<int64_t>(h - a.q_heads) * a.head_dim;
        StorePack(k + j0, lo);
        StorePack(k + j0 + half, hi);
      }
    }
    if (kStore && slot >= 0) {
      const T* v = row + static_cast<int64_t>(heads) * a.head_dim;
      for (int64_t c = static_cast<int64_t>(threadIdx.x) * W; c < kv_cols; c += static_cast<int64_t>(blockDim.x) * W) {
        StorePack(a.cache_v + slot * kv_cols + c, LoadPack<W>(v + c));
      }
    }
  }
}

template <bool kStore>
void LaunchRopeKernel(Tensor& qkv, const Tensor& positions, const Tensor& inv_freq, int num_heads, int num_kv_heads,
                      int head_dim, float sin_sign, const char* op, const int32_t* slots, int64_t num_slots,
                      void* cache_k, void* cache_v, cudaStream_t stream) {
  const int64_t n = qkv.dim(0), width = qkv.dim(1);
  const int heads = num_heads + num_kv_heads;
  Require(head_dim % 2 == 0, op, "head_dim must be even");
  Require(inv_freq.numel() == head_dim / 2 && inv_freq.dtype() == DType::kF32, op,
          "inv_freq must be F32 with head_dim / 2 entries");
  Require(positions.numel() == n && positions.dtype() == DType::kI32, op, "positions must be I32 [N]");
  Require(width >= static_cast<int64_t>(heads + (kStore ? num_kv_heads : 0)) * head_dim, op, "qkv too narrow");
  Require(head_dim / 2 <= kMaxHalf, op, "head_dim must be at most 2 * 256");
  if (n * heads * head_dim == 0) return;
  // Packs need every head's halves aligned: half and the row width divide
  // by the pack, and the bases are 16-byte aligned.
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(n, 65535LL * 16));
  BATON_DISPATCH_FLOAT(
      qkv.dtype(), op, RopeArgs<T> args; args.qkv = static_cast<T*>(qkv.raw()); args.width = width;
      args.positions = positions.data<int32_t>(); args.inv_freq = inv_freq.data<float>(); args.n = n;
      args.q_heads = num_heads; args.kv_heads = num_kv_heads; args.head_dim = head_dim; args.sin_sign = sin_sign;
      args.slots = slots; args.num_slots = num_slots; args.cache_k = static_cast<T*>(cache_k);
      args.cache_v = static_cast<T*>(cache_v);
      const int pack = PackWidthFor<T>(head_dim / 2, {qkv.raw(), cache_k, cache_v});
      const int packed = width % pack == 0 ? pack : 1; BATON_DISPATCH_PACK(
          T, packed, LaunchChained(op, RopeKernel<T, W, kStore>, dim3(blocks), dim3(kThreads), 0, stream, args)));
  CheckLaunch(op);
}

}  // namespace

void LaunchRope(Tensor& qkv, const Tensor& positions, const Tensor& inv_freq, int num_heads, int num_kv_heads,
                int head_dim, cudaStream_t stream) {
  LaunchRopeKernel<false>(qkv, positions, inv_freq, num_heads, num_kv_heads, head_dim, 1.0f, "Rope", nullptr, 0,
                          nullptr, nullptr, stream);
}

void LaunchRopeBackward(Tensor& dqkv, const Tensor& positions, const Tensor& inv_freq, int num_heads, int num_kv_heads,
                        int head_dim, cudaStream_t stream) {
  LaunchRopeKernel<false>(dqkv, positions, inv_freq, num_heads, num_kv_heads, head_dim, -1.0f, "RopeBackward", nullptr,
                          0, nullptr, nullptr, stream);
}

void LaunchRopeStoreKv(Tensor& qkv, const Tensor& positions, const Tensor& inv_freq, const PagedAttentionBatch& batch,
                       const AttentionShape& shape, Tensor& cache_k, Tensor& cache_v, cudaStream_t stream) {
  CheckStoreKvArgs(qkv, batch, shape, cache_k, cache_v, "RopeStoreKv");
  LaunchRopeKernel<true>(qkv, positions, inv_freq, shape.num_heads, shape.num_kv_heads, shape.head_dim, 1.0f,
                         "RopeStoreKv", batch.slot_mapping.data<int32_t>(), cache_k.dim(0) * cache_k.dim(1),
                         cache_k.raw(), cache_v.raw(), stream);
}

}  // namespace baton::cuda
