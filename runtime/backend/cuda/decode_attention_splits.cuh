// The decode attention kernel's parameters (decode_attention.cu) and the
// end of a split (flash-decoding): each split writes a partial (max, sum,
// weighted V) per query head, an atomic ticket finds the last split of a
// (sequence, kv head) to finish, and that block merges the partials in the
// same kernel, so a decode layer's attention is one launch.
#pragma once

#include <cstdint>

#include "runtime/backend/cuda/common.cuh"

namespace baton::cuda {

struct DecodeAttentionParams {
  const void* qkv;
  int64_t width;  // elements per qkv row
  const void* k_cache;
  const void* v_cache;
  int num_tokens;  // rows of qkv
  const int32_t* query_start;
  const int32_t* context_len;
  const int32_t* block_tables;
  int max_blocks;
  int num_heads;
  int num_kv_heads;
  int group;
  int block_size;
  int64_t kv_cols;
  float scale;
  int window;
  int num_splits;
  int keys_per_split;
  void* out;
  float* workspace;  // [tokens, heads, splits, PartialStride]: weighted V, max, sum
  int* counters;     // [seqs, kv_heads]: splits finished
  // RoPE fused in (positions non-null): q and the new token's k are rotated
  // as they are read, and the block whose keys include the new token writes
  // its rotated K and its V to the cache at its slot (what RopeStoreKv does).
  const int32_t* positions;
  const float* inv_freq;
  const int32_t* slots;
  int64_t num_slots;
  void* k_cache_out;  // the caches again, written through
  void* v_cache_out;
};

// A split's partial: head_dim weighted-V floats, its max (natural log
// domain) and its sum, padded so that every partial starts 16-byte aligned
// (vector loads and stores).
__host__ __device__ constexpr int PartialStride(int head_dim) { return head_dim + 4; }

// Where split `split` of query head h for token t writes its partial.
template <int kD>
__device__ __forceinline__ float* SplitPartial(const DecodeAttentionParams& p, int t, int h, int split) {
  return p.workspace + ((static_cast<int64_t>(t) * p.num_heads + h) * p.num_splits + split) * PartialStride(kD);
}

// Called by every thread once its partials are written: true in the block
// of the last split of (sequence s, kv head kvh) to finish, which then sees
// every other split's partials. Resets the ticket for the next call.
__device__ __forceinline__ bool LastSplitToFinish(const DecodeAttentionParams& p, int s, int kvh) {
  __shared__ bool last;
  __threadfence();  // this block's partials are visible GPU-wide before its ticket
  __syncthreads();
  if (threadIdx.x == 0) {
    int* counter = p.counters + static_cast<int64_t>(s) * p.num_kv_heads + kvh;
    last = atomicAdd(counter, 1) == p.num_splits - 1;
    if (last) atomicExch(counter, 0);  // every split has arrived: ready for the next call
  }
  __syncthreads();
  if (last) __threadfence();
  return last;
}

// kE consecutive floats of global memory through L2 (__ldcg: other blocks
// wrote them, L1 is not coherent), 16 or 8 bytes at a time; 16-byte aligned.
template <int kE>
__device__ __forceinline__ void LoadPartial(const float* src, float (&dst)[kE]) {
  if constexpr (kE % 4 == 0) {
#pragma unroll
    for (int i = 0; i < kE; i += 4) {
      const float4 v = __ldcg(reinterpret_cast<const float4*>(src + i));
      dst[i] = v.x;
      dst[i + 1] = v.y;
      dst[i + 2] = v.z;
      dst[i + 3] = v.w;
    }
  } else if constexpr (kE % 2 == 0) {
#pragma unroll
    for (int i = 0; i < kE; i += 2) {
      const float2 v = __ldcg(reinterpret_cast<const float2*>(src + i));
      dst[i] = v.x;
      dst[i + 1] = v.y;
    }
  } else {
#pragma unroll
    for (int i = 0; i < kE; ++i) dst[i] = __ldcg(src + i);
  }
}

// One warp merges query head h's partials of token t into `out` (kD
// elements). Lanes take splits for the statistics, then every lane walks
// all splits for its kD / 32 features with the weights shuffled in. The
// first kEarlySplits splits' features are requested together with the
// statistics, so that with few splits (short contexts) the merge waits for
// one round of loads, not two. Every split wrote its partial (an empty one
// zeros with sum 0, weight 0).
template <typename T, int kD>
__device__ __forceinline__ void MergeSplits(const DecodeAttentionParams& p, int t, int h, T* out) {
  constexpr int kE = kD / 32;
  constexpr int kEarlySplits = 8;
  constexpr int64_t kStride = PartialStride(kD);
  const int lane = threadIdx.x & 31;
  const float* w = SplitPartial<kD>(p, t, h, 0);
  float early[kEarlySplits][kE];
#pragma unroll
  for (int z = 0; z < kEarlySplits; ++z) {
    if (z < p.num_splits) LoadPartial<kE>(w + z * kStride + lane * kE, early[z]);
  }
  // This lane's split among the first 32 keeps its (max, sum) in registers:
  // with up to 32 splits the statistics are loaded once.
  float m_max = -INFINITY, m_first = -INFINITY, l_first = 0.0f;
  for (int z = lane; z < p.num_splits; z += 32) {
    const float mz = __ldcg(w + z * kStride + kD), lz = __ldcg(w + z * kStride + kD + 1);
    if (z < 32) {
      m_first = mz;
      l_first = lz;
    }
    if (lz > 0.0f) m_max = fmaxf(m_max, mz);
  }
  m_max = WarpMax(m_max);
  float denom = 0.0f, o[kE];
#pragma unroll
  for (int e = 0; e < kE; ++e) o[e] = 0.0f;
  for (int z0 = 0; z0 < p.num_splits; z0 += 32) {
    const int z = z0 + lane;
    float weight = 0.0f;
    if (z < p.num_splits) {
      const float lz = z0 == 0 ? l_first : __ldcg(w + z * kStride + kD + 1);
      if (lz > 0.0f) {
        weight = expf((z0 == 0 ? m_first : __ldcg(w + z * kStride + kD)) - m_max);
        denom += lz * weight;
      }
    }
    const int count = min(32, p.num_splits - z0);
    int u = 0;
    if (z0 == 0) {
#pragma unroll
      for (int v = 0; v < kEarlySplits; ++v) {
        if (v < count) {
          const float f = __shfl_sync(0xffffffffu, weight, v);
#pragma unroll
          for (int e = 0; e < kE; ++e) o[e] += early[v][e] * f;
        }
      }
      u = min(count, kEarlySplits);
    }
#pragma unroll 8
    for (; u < count; ++u) {
      const float f = __shfl_sync(0xffffffffu, weight, u);
      float part[kE];
      LoadPartial<kE>(w + (z0 + u) * kStride + lane * kE, part);
#pragma unroll
      for (int e = 0; e < kE; ++e) o[e] += part[e] * f;
    }
  }
  denom = WarpSum(denom);
#pragma unroll
  for (int e = 0; e < kE; ++e) out[lane * kE + e] = FromF<T>(denom > 0.0f ? o[e] / denom : 0.0f);
}

}  // namespace baton::cuda
