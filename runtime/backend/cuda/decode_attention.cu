#include <algorithm>
#include <type_traits>

#include "runtime/backend/cuda/chained_launch.cuh"
#include "runtime/backend/cuda/common.cuh"
#include "runtime/backend/cuda/decode_attention.cuh"
#include "runtime/backend/cuda/decode_attention_splits.cuh"
#include "runtime/backend/cuda/paged_kv_params.cuh"
#include "runtime/backend/cuda/rope_angles.cuh"

namespace baton::cuda {
namespace {

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
constexpr int kTile = 32;                          // keys per tile: one per lane when scoring
constexpr int kMaxGroup = 8;                       // query heads per kv head
constexpr int kHeadsPerWarp = kMaxGroup / kWarps;  // a warp's query heads: warp, warp + kWarps
constexpr int kMinKeysPerSplit = 16;
constexpr int kMaxSplits = 128;

// Element offset of key j's row (in cache block `block`, at kv head offset
// head_off) in the cache.
__device__ __forceinline__ int64_t CacheRow(const DecodeAttentionParams& p, int64_t block, int j, int64_t head_off) {
  return (block * p.block_size + j % p.block_size) * p.kv_cols + head_off;
}

// kE consecutive elements from shared memory, in one load where they fit.
template <typename T, int kE>
__device__ __forceinline__ void LoadFloats(const T* src, float (&dst)[kE]) {
  constexpr int kBytes = kE * static_cast<int>(sizeof(T));
  if constexpr (kBytes == 16 || kBytes == 8 || kBytes == 4) {
    using V = std::conditional_t<kBytes == 16, uint4, std::conditional_t<kBytes == 8, uint2, uint32_t>>;
    const V raw = *reinterpret_cast<const V*>(src);
    const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
    for (int i = 0; i < kE; ++i) dst[i] = ToF(e[i]);
  } else {
#pragma unroll
    for (int i = 0; i < kE; ++i) dst[i] = ToF(src[i]);
  }
}

template <typename T, int kD>
__global__ void __launch_bounds__(kThreads) DecodeAttentionKernel(DecodeAttentionParams p) {
  AllowNextGrid();
  constexpr int kPer = 16 / static_cast<int>(sizeof(T));  // elements per 16-byte chunk
  constexpr int kChunks = kD / kPer;                      // chunks per K/V row
  constexpr int kLoads = kTile * kChunks / kThreads;      // chunks of K (and of V) per thread per tile
  constexpr int kE = kD / 32;                             // output features per lane
  static_assert(kTile * kChunks % kThreads == 0, "a tile must split evenly over the threads");
  __shared__ float q_s[kMaxGroup][kD];
  // K rows padded by one chunk: lane j reading row j hits distinct banks.
  __shared__ __align__(16) T k_s[kTile][kD + kPer];
  __shared__ __align__(16) T v_s[kTile][kD];
  __shared__ float cos_s[kD / 2], sin_s[kD / 2];  // the token's RoPE angles

  const int s = blockIdx.x, kvh = blockIdx.y, split = blockIdx.z;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int32_t* table = p.block_tables + static_cast<int64_t>(s) * p.max_blocks;
  const T* k_cache = static_cast<const T*>(p.k_cache);
  const T* v_cache = static_cast<const T*>(p.v_cache);
  const int64_t head_off = static_cast<int64_t>(kvh) * kD;
  const bool rope = p.positions != nullptr;

  // Everything this kernel reads before WaitForPriorGrid comes from the
  // host (the plan) or from earlier steps (cached keys; no kernel of this
  // step writes them), so its latency overlaps the kernel that makes qkv,
  // as far as the block is on an SM by then. It is requested in two
  // dependent rounds, not three (sequence -> table -> K/V; and sequence ->
  // token -> position for RoPE):
  //  - with RoPE fused in and no window, the split's first keys do not
  //    depend on the context: their cache blocks are looked up at once, and
  //    their K/V rows requested whether or not the keys turn out to lie in
  //    the context (a block the table names is cache memory), then zeroed
  //    below where they do not. Not without RoPE: there the new token's
  //    row, which such a read may touch, is written by StoreKv, the kernel
  //    before, and read again after the wait, which must not find a line
  //    cached (in L1) before the write;
  //  - the position and slot are token s's, which is the sequence's token
  //    whenever every sequence has one (a decode graph step), else read
  //    again.
  uint4 kr[kLoads], vr[kLoads];
  // This thread's chunk i of key j's K and V rows in cache block `block`
  // (zeros for block < 0).
  auto load_chunk = [&](int i, int64_t block, int j) {
    kr[i] = make_uint4(0, 0, 0, 0);
    vr[i] = make_uint4(0, 0, 0, 0);
    if (block < 0) return;
    const int c = (tid + i * kThreads) % kChunks;
    const int64_t row = CacheRow(p, block, j, head_off);
    kr[i] = __ldg(reinterpret_cast<const uint4*>(k_cache + row) + c);
    vr[i] = __ldg(reinterpret_cast<const uint4*>(v_cache + row) + c);
  };
  const bool early_keys = rope && p.window == 0;
  if (early_keys) {
#pragma unroll
    for (int i = 0; i < kLoads; ++i) {
      const int j = split * p.keys_per_split + (tid + i * kThreads) / kChunks;
      const int b = j / p.block_size;
      load_chunk(i, b < p.max_blocks ? table[b] : -1, j);
    }
  }
  int position = 0;
  int64_t slot = -1;
  if (rope && s < p.num_tokens) {
    position = p.positions[s];
    slot = p.slots[s];
  }
  const int t = p.query_start[s], t_end = p.query_start[s + 1], context = p.context_len[s];
  if (t_end <= t) return;  // no new token: no output, no ticket
  const int pos = context - 1;
  const int k_begin = p.window > 0 ? max(0, pos - p.window + 1) : 0;
  const int k_first = k_begin + split * p.keys_per_split;
  // The last split runs to the query's own position, so a stale (bucketed)
  // max_context_len only unbalances the splits, never drops keys.
  const int k_last = split == p.num_splits - 1 ? pos : min(pos, k_first + p.keys_per_split - 1);
  const int h0 = kvh * p.group;

  // A tile's keys past k_last are zeros (unwritten cache slots may hold NaN
  // patterns, and 0 * NaN would leak into acc); the new token's key is
  // filled in after the wait.
  auto cached = [&](int j) { return j < pos && j <= k_last; };
  auto load_cached = [&](int kb) {
#pragma unroll
    for (int i = 0; i < kLoads; ++i) {
      const int j = kb + (tid + i * kThreads) / kChunks;
      load_chunk(i, cached(j) ? table[j / p.block_size] : -1, j);
    }
  };
  if (early_keys) {
#pragma unroll
    for (int i = 0; i < kLoads; ++i) {
      if (!cached(k_first + (tid + i * kThreads) / kChunks)) load_chunk(i, -1, 0);
    }
  } else {
    load_cached(k_first);
  }
  // The token's angles (sincosf) and its cache slot are ready before the
  // wait too, off the path from the kernel that makes qkv to this one's
  // output.
  if (rope) {
    if (t != s) {
      position = p.positions[t];
      slot = p.slots[t];
    }
    FormRopeAngles(static_cast<float>(position), p.inv_freq, kD / 2, cos_s, sin_s);
    __syncthreads();
  }
  WaitForPriorGrid();

  const T* row_t = static_cast<const T*>(p.qkv) + static_cast<int64_t>(t) * p.width;
  const T* q = row_t + static_cast<int64_t>(h0) * kD;
  const T* k_new = row_t + static_cast<int64_t>(p.num_heads) * kD + head_off;
  // With RoPE, the new token's k (both chunks its rotation reads) and v, for
  // the chunk of its row this thread places, are requested here, alongside
  // q: one round trip after the wait, not q's and then theirs.
  int new_i = -1;  // which of this thread's tile chunks is the new token's
  RopePair k_pair = {};
  uint4 v_new = make_uint4(0, 0, 0, 0);
  if (rope && k_first <= pos && pos <= k_last) {
    const int row = (pos - k_first) % kTile;
#pragma unroll
    for (int i = 0; i < kLoads; ++i) {
      if ((tid + i * kThreads) / kChunks == row) new_i = i;
    }
    if (new_i >= 0) {
      const int c = (tid + new_i * kThreads) % kChunks;
      k_pair = LoadRopePair<T, kD>(k_new, c * kPer);
      v_new = *(reinterpret_cast<const uint4*>(k_new + p.kv_cols) + c);
    }
  }
  if (rope) {
    for (int i = tid; i < p.group * kChunks; i += kThreads) {
      const int g = i / kChunks, d0 = (i % kChunks) * kPer;
      const uint4 raw = RotatedChunk<T, kD>(q + g * kD, d0, cos_s, sin_s);
      const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
      for (int u = 0; u < kPer; ++u) q_s[g][d0 + u] = ToF(e[u]) * p.scale;
    }
  } else {
    for (int i = tid; i < p.group * kD; i += kThreads) q_s[i / kD][i % kD] = ToF(q[i]) * p.scale;
  }

  float m[kHeadsPerWarp], l[kHeadsPerWarp], acc[kHeadsPerWarp][kE];
#pragma unroll
  for (int hh = 0; hh < kHeadsPerWarp; ++hh) {
    m[hh] = -INFINITY;
    l[hh] = 0.0f;
#pragma unroll
    for (int e = 0; e < kE; ++e) acc[hh][e] = 0.0f;
  }

  for (int kb = k_first; kb <= k_last; kb += kTile) {
    // Every K and V chunk of the tile is requested before any is stored:
    // one memory latency per tile.
    if (kb != k_first) load_cached(kb);
    if (pos <= k_last && kb <= pos && pos < kb + kTile) {  // the block whose keys include the new token
#pragma unroll
      for (int i = 0; i < kLoads; ++i) {
        const int idx = tid + i * kThreads;
        if (kb + idx / kChunks != pos) continue;
        const int c = idx % kChunks;
        if (rope) {
          // The new token's k rotated here and its v; they also go to the
          // cache (read by later steps, not by this kernel).
          kr[i] = RotatePair<T, kD>(k_pair, c * kPer, cos_s, sin_s);
          vr[i] = v_new;
          if (slot >= 0 && slot < p.num_slots) {
            const int64_t at = slot * p.kv_cols + head_off;
            *(reinterpret_cast<uint4*>(static_cast<T*>(p.k_cache_out) + at) + c) = kr[i];
            *(reinterpret_cast<uint4*>(static_cast<T*>(p.v_cache_out) + at) + c) = vr[i];
          }
        } else {  // StoreKv, the kernel before, put it in the cache
          const int64_t row = CacheRow(p, table[pos / p.block_size], pos, head_off);
          kr[i] = *(reinterpret_cast<const uint4*>(k_cache + row) + c);
          vr[i] = *(reinterpret_cast<const uint4*>(v_cache + row) + c);
        }
      }
    }
#pragma unroll
    for (int i = 0; i < kLoads; ++i) {
      const int idx = tid + i * kThreads;
      const int r = idx / kChunks, c = idx % kChunks;
      *reinterpret_cast<uint4*>(&k_s[r][c * kPer]) = kr[i];
      *reinterpret_cast<uint4*>(&v_s[r][c * kPer]) = vr[i];
    }
    __syncthreads();  // the tile (and, the first time, q_s) is in place

    const int valid = min(kTile, k_last - kb + 1);
#pragma unroll
    for (int hh = 0; hh < kHeadsPerWarp; ++hh) {
      const int g = warp + hh * kWarps;
      if (g >= p.group) break;  // warp-uniform
      float score = -INFINITY;
      if (lane < valid) {
        const uint4* krow = reinterpret_cast<const uint4*>(&k_s[lane][0]);
        float sum = 0.0f;
#pragma unroll
        for (int c = 0; c < kChunks; ++c) {
          const uint4 raw = krow[c];
          const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
          for (int u = 0; u < kPer; ++u) sum += q_s[g][c * kPer + u] * ToF(e[u]);
        }
        score = sum;
      }
      const float m_new = fmaxf(m[hh], WarpMax(score));
      const float correction = expf(m[hh] - m_new);  // 0 on the first tile (m = -inf)
      const float pj = lane < valid ? expf(score - m_new) : 0.0f;
      l[hh] = l[hh] * correction + WarpSum(pj);
#pragma unroll
      for (int e = 0; e < kE; ++e) acc[hh][e] *= correction;
#pragma unroll 8
      for (int j = 0; j < valid; ++j) {
        const float pv = __shfl_sync(0xffffffffu, pj, j);
        float v[kE];
        LoadFloats<T, kE>(&v_s[j][lane * kE], v);
#pragma unroll
        for (int e = 0; e < kE; ++e) acc[hh][e] += pv * v[e];
      }
      m[hh] = m_new;
    }
    __syncthreads();  // before the next tile overwrites k_s / v_s
  }

  T* out = static_cast<T*>(p.out) + static_cast<int64_t>(t) * p.num_heads * kD;
  if (p.num_splits == 1) {
#pragma unroll
    for (int hh = 0; hh < kHeadsPerWarp; ++hh) {
      const int g = warp + hh * kWarps;
      if (g >= p.group) break;
      const float inv = l[hh] > 0.0f ? 1.0f / l[hh] : 0.0f;  // no key at all (malformed batch): zeros, as the CPU
#pragma unroll
      for (int e = 0; e < kE; ++e) out[(h0 + g) * kD + lane * kE + e] = FromF<T>(acc[hh][e] * inv);
    }
    return;
  }

  // Partial of this split, then a ticket; the last split to arrive merges.
#pragma unroll
  for (int hh = 0; hh < kHeadsPerWarp; ++hh) {
    const int g = warp + hh * kWarps;
    if (g >= p.group) break;
    float* w = SplitPartial<kD>(p, t, h0 + g, split);
#pragma unroll
    for (int e = 0; e < kE; ++e) w[lane * kE + e] = acc[hh][e];
    if (lane == 0) {
      w[kD] = m[hh];
      w[kD + 1] = l[hh];
    }
  }
  if (!LastSplitToFinish(p, s, kvh)) return;
  for (int g = warp; g < p.group; g += kWarps) MergeSplits<T, kD>(p, t, h0 + g, out + (h0 + g) * kD);
}

// Dynamic shared memory (unused) that keeps decode-attention blocks one to
// an SM, or 0 when the grid has more blocks than the GPU has SMs. The
// attention runs while the qkv GEMV's blocks (one wave, no shared memory)
// still hold their SMs, and the block scheduler packs a small grid onto the
// first SMs with room: 64 blocks landed on 13-18 SMs and their chains of
// dependent loads stretched from ~5.5 to ~9 us a layer. Asking for more than
// half an SM's shared memory puts each block on an SM of its own: 1B decode
// +1.7 % (H100). Asking for less (60 or 100 KB) was slower than nothing.
template <typename T>
int SpreadingSharedBytes(int64_t blocks) {
  static const int bytes = [] {
    cudaFuncAttributes a64 = {}, a128 = {};
    if (cudaFuncGetAttributes(&a64, DecodeAttentionKernel<T, 64>) != cudaSuccess ||
        cudaFuncGetAttributes(&a128, DecodeAttentionKernel<T, 128>) != cudaSuccess) {
      cudaGetLastError();
      return 0;
    }
    const int least = static_cast<int>(std::min(a64.sharedSizeBytes, a128.sharedSizeBytes));
    const int most = static_cast<int>(std::max(a64.sharedSizeBytes, a128.sharedSizeBytes));
    const int dynamic = CurrentDeviceAttribute(cudaDevAttrMaxSharedMemoryPerMultiprocessor) / 2 + 4096 - least;
    if (dynamic <= 0 || dynamic + most > CurrentDeviceAttribute(cudaDevAttrMaxSharedMemoryPerBlockOptin) ||
        cudaFuncSetAttribute(DecodeAttentionKernel<T, 64>, cudaFuncAttributeMaxDynamicSharedMemorySize, dynamic) !=
            cudaSuccess ||
        cudaFuncSetAttribute(DecodeAttentionKernel<T, 128>, cudaFuncAttributeMaxDynamicSharedMemorySize, dynamic) !=
            cudaSuccess) {
      cudaGetLastError();
      return 0;
    }
    return dynamic;
  }();
  static const int sms = CurrentDeviceAttribute(cudaDevAttrMultiProcessorCount);
  return blocks <= sms ? bytes : 0;
}

template <typename T>
void LaunchTyped(const DecodeAttentionParams& p, int num_seqs, int head_dim, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(num_seqs), static_cast<unsigned>(p.num_kv_heads),
                  static_cast<unsigned>(p.num_splits));
  const int pad = SpreadingSharedBytes<T>(static_cast<int64_t>(grid.x) * grid.y * grid.z);
  if (head_dim == 64) {
    LaunchChained("DecodeAttention", DecodeAttentionKernel<T, 64>, dim3(grid), dim3(kThreads), pad, stream, p);
  } else {
    LaunchChained("DecodeAttention", DecodeAttentionKernel<T, 128>, dim3(grid), dim3(kThreads), pad, stream, p);
  }
}

bool Aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

bool DecodeAttentionSupported(const Tensor& qkv, const Tensor& cache_k, const Tensor& cache_v,
                              const PagedAttentionBatch& batch, const AttentionShape& shape) {
  const int d = shape.head_dim;
  return batch.max_query_len <= 1 && (d == 64 || d == 128) && shape.num_kv_heads > 0 &&
         shape.num_heads % shape.num_kv_heads == 0 && shape.num_heads / shape.num_kv_heads <= kMaxGroup &&
         IsFloatDType(qkv.dtype()) && Aligned16(cache_k.raw()) && Aligned16(cache_v.raw());
}

DecodeAttentionPlan PlanDecodeAttention(int64_t num_tokens, const PagedAttentionBatch& batch,
                                        const AttentionShape& shape, int multiprocessors, int min_keys_per_split) {
  const int min_keys = std::max(kMinKeysPerSplit, (min_keys_per_split + 15) / 16 * 16);
  DecodeAttentionPlan plan;
  int keys = std::max(batch.max_context_len, 1);
  if (shape.sliding_window > 0) keys = std::min(keys, shape.sliding_window);
  const int64_t blocks = std::max<int64_t>(static_cast<int64_t>(batch.num_seqs) * shape.num_kv_heads, 1);
  // Several blocks per SM: a decode block is latency-bound, not busy.
  const int64_t want = 4LL * std::max(multiprocessors, 1);
  int64_t splits = blocks >= want ? 1 : (want + blocks - 1) / blocks;
  splits = std::min<int64_t>({splits, (keys + min_keys - 1) / min_keys, kMaxSplits});
  splits = std::max<int64_t>(splits, 1);
  const int per = static_cast<int>((keys + splits - 1) / splits);
  plan.keys_per_split = (per + kMinKeysPerSplit - 1) / kMinKeysPerSplit * kMinKeysPerSplit;
  plan.num_splits = std::max(1, (keys + plan.keys_per_split - 1) / plan.keys_per_split);
  if (plan.num_splits > 1) {
    plan.workspace_floats = num_tokens * shape.num_heads * plan.num_splits * PartialStride(shape.head_dim);
    plan.counters = static_cast<int64_t>(batch.num_seqs) * shape.num_kv_heads;
  }
  return plan;
}

void LaunchDecodeAttention(const Tensor& qkv, const Tensor& cache_k, const Tensor& cache_v,
                           const PagedAttentionBatch& batch, const AttentionShape& shape,
                           const DecodeAttentionPlan& plan, float* workspace, int* counters, Tensor& out,
                           cudaStream_t stream, const DecodeRope* rope) {
  const int64_t n = qkv.dim(0);
  const int d = shape.head_dim;
  Require(DecodeAttentionSupported(qkv, cache_k, cache_v, batch, shape), "DecodeAttention",
          "batch or shape outside this kernel (see DecodeAttentionSupported)");
  Require(out.ndim() == 2 && out.dim(0) == n && out.dim(1) == static_cast<int64_t>(shape.num_heads) * d,
          "DecodeAttention", "out must be [N, heads*head_dim]");
  Require(qkv.dim(1) >= static_cast<int64_t>(shape.num_heads + 2 * shape.num_kv_heads) * d, "DecodeAttention",
          "qkv rows are narrower than q + k + v");
  Require(qkv.dtype() == out.dtype() && cache_k.dtype() == qkv.dtype() && cache_v.dtype() == qkv.dtype(),
          "DecodeAttention", "qkv, caches and out must share a dtype");
  Require(batch.query_start.numel() == batch.num_seqs + 1 && batch.context_len.numel() == batch.num_seqs &&
              batch.block_tables.ndim() == 2 && batch.block_tables.dim(0) == batch.num_seqs,
          "DecodeAttention", "batch tensors must be [S+1], [S] and [S, max_blocks]");
  Require(plan.num_splits == 1 || (workspace != nullptr && counters != nullptr), "DecodeAttention",
          "split plan without workspace or counters");
  if (n == 0 || batch.num_seqs == 0) return;
  DecodeAttentionParams p;
  FillPagedKvParams(p, qkv, cache_k, cache_v, batch, shape);
  p.num_kv_heads = shape.num_kv_heads;
  p.scale = shape.scale;
  p.window = shape.sliding_window;
  p.num_splits = plan.num_splits;
  p.keys_per_split = plan.keys_per_split;
  p.out = out.raw();
  p.workspace = workspace;
  p.counters = counters;
  p.positions = nullptr;
  p.inv_freq = nullptr;
  p.slots = nullptr;
  p.num_slots = 0;
  p.k_cache_out = p.v_cache_out = nullptr;
  p.num_tokens = static_cast<int>(n);
  if (rope != nullptr) {
    Require(rope->positions.numel() == n && rope->positions.dtype() == DType::kI32 && rope->inv_freq.numel() == d / 2 &&
                rope->inv_freq.dtype() == DType::kF32 && batch.slot_mapping.numel() == n &&
                batch.slot_mapping.dtype() == DType::kI32,
            "DecodeAttention", "RoPE needs I32 positions and slots [N] and F32 inv_freq [head_dim / 2]");
    p.positions = rope->positions.data<int32_t>();
    p.inv_freq = rope->inv_freq.data<float>();
    p.slots = batch.slot_mapping.data<int32_t>();
    p.num_slots = cache_k.dim(0) * cache_k.dim(1);
    p.k_cache_out = rope->cache_k->raw();
    p.v_cache_out = rope->cache_v->raw();
  }
  BATON_DISPATCH_FLOAT(qkv.dtype(), "DecodeAttention", LaunchTyped<T>(p, batch.num_seqs, d, stream));
  CheckLaunch("DecodeAttention");
}

}  // namespace baton::cuda
