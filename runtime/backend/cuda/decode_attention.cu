#include <algorithm>
#include <type_traits>

#include "runtime/backend/cuda/chained_launch.cuh"
#include "runtime/backend/cuda/common.cuh"
#include "runtime/backend/cuda/decode_attention.cuh"
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
// A split's partial: head_dim weighted-V floats, its max and its sum, padded
// so that every partial starts 16-byte aligned (vector loads and stores).
__host__ __device__ constexpr int PartialStride(int head_dim) { return head_dim + 4; }

struct Params {
  const void* qkv;
  int64_t width;  // elements per qkv row
  const void* k_cache;
  const void* v_cache;
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
  float* workspace;  // [tokens, heads, splits, kPartialStride]: weighted V, max, sum
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

// Chunk [d0, d0 + 16 bytes) of a head row of kD elements rotated
// (rotate-half, rope_angles.cuh) by the angles whose cosines and sines are
// in cos_s / sin_s (kD / 2 each), rounded to T.
template <typename T, int kD>
__device__ __forceinline__ uint4 RotatedChunk(const T* head, int d0, const float* cos_s, const float* sin_s) {
  constexpr int kPer = 16 / static_cast<int>(sizeof(T));
  constexpr int kHalf = kD / 2;
  static_assert(kHalf % kPer == 0, "a chunk must lie in one half of the head");
  const bool low = d0 < kHalf;
  const int j0 = low ? d0 : d0 - kHalf;
  const uint4 lo_raw = *reinterpret_cast<const uint4*>(head + j0);
  const uint4 hi_raw = *reinterpret_cast<const uint4*>(head + j0 + kHalf);
  const T* lo = reinterpret_cast<const T*>(&lo_raw);
  const T* hi = reinterpret_cast<const T*>(&hi_raw);
  uint4 out;
  T* o = reinterpret_cast<T*>(&out);
#pragma unroll
  for (int u = 0; u < kPer; ++u) {
    const float cs = cos_s[j0 + u], sn = sin_s[j0 + u];
    const float a = ToF(lo[u]), b = ToF(hi[u]);
    o[u] = FromF<T>(low ? RotatedLow(a, b, cs, sn) : RotatedHigh(a, b, cs, sn));
  }
  return out;
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
__global__ void __launch_bounds__(kThreads) DecodeAttentionKernel(Params p) {
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
  __shared__ bool last_s;
  __shared__ float cos_s[kD / 2], sin_s[kD / 2];  // the token's RoPE angles

  const int s = blockIdx.x, kvh = blockIdx.y, split = blockIdx.z;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  // All three requested before the branch: one memory latency, not two.
  const int t = p.query_start[s], t_end = p.query_start[s + 1], context = p.context_len[s];
  if (t_end <= t) return;  // no new token: no output, no ticket
  const int pos = context - 1;
  const int k_begin = p.window > 0 ? max(0, pos - p.window + 1) : 0;
  const int k_first = k_begin + split * p.keys_per_split;
  // The last split runs to the query's own position, so a stale (bucketed)
  // max_context_len only unbalances the splits, never drops keys.
  const int k_last = split == p.num_splits - 1 ? pos : min(pos, k_first + p.keys_per_split - 1);
  const int h0 = kvh * p.group;

  const int32_t* table = p.block_tables + static_cast<int64_t>(s) * p.max_blocks;
  const T* k_cache = static_cast<const T*>(p.k_cache);
  const T* v_cache = static_cast<const T*>(p.v_cache);
  const int64_t head_off = static_cast<int64_t>(kvh) * kD;

  // A tile's keys older than the new token were cached by earlier steps
  // (no kernel of this step writes them), and the plan's tables came from
  // the host: the first tile is requested before WaitForPriorGrid, so its
  // latency overlaps the kernel that makes qkv. Keys past k_last are zeros
  // (unwritten cache slots may hold NaN patterns, and 0 * NaN would leak
  // into acc); the new token's key is filled in after the wait.
  uint4 kr[kLoads], vr[kLoads];
  auto load_cached = [&](int kb) {
#pragma unroll
    for (int i = 0; i < kLoads; ++i) {
      const int idx = tid + i * kThreads;
      const int j = kb + idx / kChunks, c = idx % kChunks;
      kr[i] = make_uint4(0, 0, 0, 0);
      vr[i] = make_uint4(0, 0, 0, 0);
      if (j < pos && j <= k_last) {
        const int64_t block = table[j / p.block_size];
        const int64_t row = (block * p.block_size + j % p.block_size) * p.kv_cols + head_off;
        kr[i] = __ldg(reinterpret_cast<const uint4*>(k_cache + row) + c);
        vr[i] = __ldg(reinterpret_cast<const uint4*>(v_cache + row) + c);
      }
    }
  };
  load_cached(k_first);
  // Positions, slots and inv_freq come from the host too: the token's
  // angles (sincosf) and its cache slot are ready before the wait, off the
  // path from the kernel that makes qkv to this one's output.
  const bool rope = p.positions != nullptr;
  int64_t slot = -1;
  if (rope) {
    slot = p.slots[t];
    FormRopeAngles(static_cast<float>(p.positions[t]), p.inv_freq, kD / 2, cos_s, sin_s);
    __syncthreads();
  }
  WaitForPriorGrid();

  const T* row_t = static_cast<const T*>(p.qkv) + static_cast<int64_t>(t) * p.width;
  const T* q = row_t + static_cast<int64_t>(h0) * kD;
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
        const T* k_new = row_t + static_cast<int64_t>(p.num_heads) * kD + head_off;
        if (rope) {
          // The new token's k rotated here and its v, from qkv; they also
          // go to the cache (read by later steps, not by this kernel).
          kr[i] = RotatedChunk<T, kD>(k_new, c * kPer, cos_s, sin_s);
          vr[i] = *(reinterpret_cast<const uint4*>(k_new + p.kv_cols) + c);
          if (slot >= 0 && slot < p.num_slots) {
            const int64_t at = slot * p.kv_cols + head_off;
            *(reinterpret_cast<uint4*>(static_cast<T*>(p.k_cache_out) + at) + c) = kr[i];
            *(reinterpret_cast<uint4*>(static_cast<T*>(p.v_cache_out) + at) + c) = vr[i];
          }
        } else {  // StoreKv, the kernel before, put it in the cache
          const int64_t block = table[pos / p.block_size];
          const int64_t row = (block * p.block_size + pos % p.block_size) * p.kv_cols + head_off;
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
  constexpr int64_t kStride = PartialStride(kD);
#pragma unroll
  for (int hh = 0; hh < kHeadsPerWarp; ++hh) {
    const int g = warp + hh * kWarps;
    if (g >= p.group) break;
    float* w = p.workspace + ((static_cast<int64_t>(t) * p.num_heads + h0 + g) * p.num_splits + split) * kStride;
#pragma unroll
    for (int e = 0; e < kE; ++e) w[lane * kE + e] = acc[hh][e];
    if (lane == 0) {
      w[kD] = m[hh];
      w[kD + 1] = l[hh];
    }
  }
  __threadfence();  // this block's partials are visible GPU-wide before its ticket
  __syncthreads();
  if (tid == 0) {
    int* counter = p.counters + static_cast<int64_t>(s) * p.num_kv_heads + kvh;
    last_s = atomicAdd(counter, 1) == p.num_splits - 1;
    if (last_s) atomicExch(counter, 0);  // every split has arrived: ready for the next call
  }
  __syncthreads();
  if (!last_s) return;
  __threadfence();

  // The merge: lanes take splits for the statistics, then every lane walks
  // all splits for its features with the weights shuffled in, so the loads
  // are independent of each other (no branch on a loaded value between
  // them) and overlap. Every split wrote its partial (an empty one zeros
  // with sum 0, weight 0).
#pragma unroll
  for (int hh = 0; hh < kHeadsPerWarp; ++hh) {
    const int g = warp + hh * kWarps;
    if (g >= p.group) break;
    const float* w = p.workspace + (static_cast<int64_t>(t) * p.num_heads + h0 + g) * p.num_splits * kStride;
    // This lane's split among the first 32 keeps its (max, sum) in
    // registers: with up to 32 splits the statistics are loaded once.
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
#pragma unroll 8
      for (int u = 0; u < count; ++u) {
        const float f = __shfl_sync(0xffffffffu, weight, u);
        float part[kE];
        LoadPartial<kE>(w + (z0 + u) * kStride + lane * kE, part);
#pragma unroll
        for (int e = 0; e < kE; ++e) o[e] += part[e] * f;
      }
    }
    denom = WarpSum(denom);
#pragma unroll
    for (int e = 0; e < kE; ++e) {
      out[(h0 + g) * kD + lane * kE + e] = FromF<T>(denom > 0.0f ? o[e] / denom : 0.0f);
    }
  }
}

template <typename T>
void LaunchTyped(const Params& p, int num_seqs, int head_dim, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(num_seqs), static_cast<unsigned>(p.num_kv_heads),
                  static_cast<unsigned>(p.num_splits));
  if (head_dim == 64) {
    LaunchChained("DecodeAttention", DecodeAttentionKernel<T, 64>, dim3(grid), dim3(kThreads), 0, stream, p);
  } else {
    LaunchChained("DecodeAttention", DecodeAttentionKernel<T, 128>, dim3(grid), dim3(kThreads), 0, stream, p);
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
  Params p;
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
