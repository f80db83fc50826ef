#include <algorithm>
#include <climits>

#include "runtime/backend/cuda/common.cuh"
#include "runtime/backend/cuda/paged_kv_params.cuh"
#include "runtime/backend/cuda/flash_prefill.cuh"
#include "runtime/backend/cuda/paged_attention.cuh"

namespace baton::cuda {
namespace {

// One warp per (token, head, split); a block's warps take consecutive heads
// of one token, so with GQA they read the same K/V rows (from L1).
constexpr int kWarps = 4;
constexpr int kVUnroll = 8;  // V rows loaded together (divides 32)
// Keys per split at least: short contexts still spread over many SMs.
constexpr int kMinKeysPerSplit = 32;

struct Params {
  const void* qkv;
  int64_t width;  // elements per qkv row
  const void* k_cache;
  const void* v_cache;
  const int32_t* query_start;
  const int32_t* context_len;
  const int32_t* block_tables;
  int max_blocks;
  int num_seqs;
  int num_heads;
  int group;  // query heads per kv head
  int head_dim;
  int block_size;
  int64_t kv_cols;
  float scale;
  int window;
  int num_splits;
  int keys_per_split;
  int max_q_len;  // sequences with more new tokens are the flash kernel's
  void* out;
  float* workspace;  // [tokens, heads, splits, head_dim + 2]
};

// q (already scaled, float, in shared memory) . k (one cache row).
template <typename T, bool kVec>
__device__ __forceinline__ float DotQK(const float* q, const T* k, int d) {
  float sum = 0;
  if constexpr (kVec) {
    // kChunk 16-byte loads issued together, then their FMAs: one memory
    // latency per chunk rather than one per load.
    constexpr int kPer = 16 / sizeof(T), kChunk = 8;
    const uint4* k4 = reinterpret_cast<const uint4*>(k);
    const int n = d / kPer;
    for (int c0 = 0; c0 < n; c0 += kChunk) {
      uint4 raw[kChunk];
#pragma unroll
      for (int u = 0; u < kChunk; ++u) {
        if (c0 + u < n) raw[u] = __ldg(k4 + c0 + u);
      }
#pragma unroll
      for (int u = 0; u < kChunk; ++u) {
        if (c0 + u < n) {
          const T* e = reinterpret_cast<const T*>(&raw[u]);
#pragma unroll
          for (int v = 0; v < kPer; ++v) sum += q[(c0 + u) * kPer + v] * ToF(e[v]);
        }
      }
    }
  } else {
    for (int c = 0; c < d; ++c) sum += q[c] * ToF(k[c]);
  }
  return sum;
}

// The sequence owning token t: the last s with query_start[s] <= t (empty
// sequences have query_start[s] == query_start[s + 1] and are skipped).
__device__ __forceinline__ int SequenceOf(const int32_t* query_start, int num_seqs, int t) {
  int lo = 0, hi = num_seqs - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (query_start[mid] <= t) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  return lo;
}

// kE = elements of a head each lane owns (lane + 32 * i), head_dim <= 32 * kE.
template <typename T, int kE, bool kVec>
__global__ void __launch_bounds__(kWarps * 32) PagedAttentionKernel(Params p) {
  __shared__ float q_smem[kWarps][32 * kE];
  const int t = blockIdx.x;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int h = blockIdx.y * kWarps + warp;
  const int split = blockIdx.z;
  if (h >= p.num_heads || t >= p.query_start[p.num_seqs]) return;  // rows outside every sequence stay untouched
  const int s = SequenceOf(p.query_start, p.num_seqs, t);
  const int q_begin = p.query_start[s];
  const int q_len = p.query_start[s + 1] - q_begin;
  if (q_len > p.max_q_len) return;
  const int pos = p.context_len[s] - q_len + (t - q_begin);
  const int k_begin = p.window > 0 ? max(0, pos - p.window + 1) : 0;
  const int k_first = k_begin + split * p.keys_per_split;
  // The last split runs to the query's own position, so a stale
  // max_context_len in the batch can only unbalance the splits, never drop keys.
  const int k_last = split == p.num_splits - 1 ? pos : min(pos, k_first + p.keys_per_split - 1);
  const int d = p.head_dim;

  const T* q = static_cast<const T*>(p.qkv) + static_cast<int64_t>(t) * p.width + static_cast<int64_t>(h) * d;
  float* qs = q_smem[warp];
#pragma unroll
  for (int i = 0; i < kE; ++i) {
    const int c = lane + 32 * i;
    if (c < d) qs[c] = ToF(q[c]) * p.scale;
  }
  __syncwarp();

  const int32_t* table = p.block_tables + static_cast<int64_t>(s) * p.max_blocks;
  const int64_t head_off = static_cast<int64_t>(h / p.group) * d;
  const T* k_cache = static_cast<const T*>(p.k_cache);
  const T* v_cache = static_cast<const T*>(p.v_cache);
  float m = -INFINITY, l = 0.0f;
  float acc[kE];
#pragma unroll
  for (int i = 0; i < kE; ++i) acc[i] = 0.0f;

  // Tiles of 32 keys: lane j scores key kb + j, then the warp folds the
  // tile into the running (max, sum, acc) and accumulates V with lanes
  // spread over the head dimension (coalesced rows).
  for (int kb = k_first; kb <= k_last; kb += 32) {
    const int j = kb + lane;
    float score = -INFINITY;
    int64_t row = 0;
    if (j <= k_last) {
      const int64_t block = table[j / p.block_size];
      row = (block * p.block_size + j % p.block_size) * p.kv_cols + head_off;
      score = DotQK<T, kVec>(qs, k_cache + row, d);
    }
    const float m_new = fmaxf(m, WarpMax(score));
    const float correction = expf(m - m_new);  // 0 on the first tile (m = -inf)
    const float pj = j <= k_last ? expf(score - m_new) : 0.0f;
    l = l * correction + WarpSum(pj);
#pragma unroll
    for (int i = 0; i < kE; ++i) acc[i] *= correction;
    const int valid = min(32, k_last - kb + 1);
    // kVUnroll keys at a time, all their V loads issued before any is used:
    // the loads' latencies overlap instead of adding up key after key (a
    // decode step is latency-bound here, not bandwidth-bound).
    for (int j0 = 0; j0 < valid; j0 += kVUnroll) {
      float pv[kVUnroll];
      float v[kVUnroll][kE];
#pragma unroll
      for (int u = 0; u < kVUnroll; ++u) {
        const int jj = j0 + u;  // < 32: j0 is a multiple of kVUnroll, which divides 32
        pv[u] = __shfl_sync(0xffffffffu, pj, jj);  // 0 past k_last
        const int64_t r = __shfl_sync(0xffffffffu, row, jj);
#pragma unroll
        for (int i = 0; i < kE; ++i) {
          const int c = lane + 32 * i;
          v[u][i] = jj < valid && c < d ? ToF(v_cache[r + c]) : 0.0f;
        }
      }
#pragma unroll
      for (int u = 0; u < kVUnroll; ++u) {
#pragma unroll
        for (int i = 0; i < kE; ++i) acc[i] += pv[u] * v[u][i];
      }
    }
    m = m_new;
  }

  if (p.num_splits == 1) {
    T* out = static_cast<T*>(p.out) + static_cast<int64_t>(t) * p.num_heads * d + static_cast<int64_t>(h) * d;
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;  // no key at all (malformed batch): zeros, as the CPU
#pragma unroll
    for (int i = 0; i < kE; ++i) {
      const int c = lane + 32 * i;
      if (c < d) out[c] = FromF<T>(acc[i] * inv);
    }
  } else {
    float* w = p.workspace + ((static_cast<int64_t>(t) * p.num_heads + h) * p.num_splits + split) * (d + 2);
#pragma unroll
    for (int i = 0; i < kE; ++i) {
      const int c = lane + 32 * i;
      if (c < d) w[c] = acc[i];
    }
    if (lane == 0) {
      w[d] = m;
      w[d + 1] = l;
    }
  }
}

// Merges the splits of one (token, head): rescale each partial by
// exp(m_split - m_max) and normalise by the rescaled sums.
template <typename T>
__global__ void CombineSplitsKernel(Params p) {
  const int t = blockIdx.x, h = blockIdx.y;
  if (t >= p.query_start[p.num_seqs]) return;
  const int s = SequenceOf(p.query_start, p.num_seqs, t);
  if (p.query_start[s + 1] - p.query_start[s] > p.max_q_len) return;
  const int d = p.head_dim;
  const float* w = p.workspace + (static_cast<int64_t>(t) * p.num_heads + h) * p.num_splits * (d + 2);
  float m_max = -INFINITY;
  for (int z = 0; z < p.num_splits; ++z) {
    if (w[z * (d + 2) + d + 1] > 0.0f) m_max = fmaxf(m_max, w[z * (d + 2) + d]);
  }
  float denom = 0.0f;
  for (int z = 0; z < p.num_splits; ++z) {
    const float lz = w[z * (d + 2) + d + 1];
    if (lz > 0.0f) denom += lz * expf(w[z * (d + 2) + d] - m_max);
  }
  T* out = static_cast<T*>(p.out) + static_cast<int64_t>(t) * p.num_heads * d + static_cast<int64_t>(h) * d;
  for (int c = threadIdx.x; c < d; c += blockDim.x) {
    float v = 0.0f;
    for (int z = 0; z < p.num_splits; ++z) {
      const float lz = w[z * (d + 2) + d + 1];
      if (lz > 0.0f) v += w[z * (d + 2) + c] * expf(w[z * (d + 2) + d] - m_max);
    }
    out[c] = FromF<T>(denom > 0.0f ? v / denom : 0.0f);
  }
}

template <typename T, int kE>
void LaunchTyped(const Params& p, int64_t num_tokens, bool vec, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(num_tokens), static_cast<unsigned>((p.num_heads + kWarps - 1) / kWarps),
                  static_cast<unsigned>(p.num_splits));
  if (vec) {
    PagedAttentionKernel<T, kE, true><<<grid, kWarps * 32, 0, stream>>>(p);
  } else {
    PagedAttentionKernel<T, kE, false><<<grid, kWarps * 32, 0, stream>>>(p);
  }
  CheckLaunch("PagedAttention");
  if (p.num_splits > 1) {
    CombineSplitsKernel<T><<<dim3(static_cast<unsigned>(num_tokens), p.num_heads), 128, 0, stream>>>(p);
    CheckLaunch("PagedAttention combine");
  }
}

template <typename T>
void LaunchForHeadDim(const Params& p, int64_t num_tokens, bool vec, cudaStream_t stream) {
  if (p.head_dim <= 32) {
    LaunchTyped<T, 1>(p, num_tokens, vec, stream);
  } else if (p.head_dim <= 64) {
    LaunchTyped<T, 2>(p, num_tokens, vec, stream);
  } else if (p.head_dim <= 128) {
    LaunchTyped<T, 4>(p, num_tokens, vec, stream);
  } else {
    LaunchTyped<T, 8>(p, num_tokens, vec, stream);
  }
}

}  // namespace

AttentionPlan PlanPagedAttention(int64_t num_tokens, const PagedAttentionBatch& batch, const AttentionShape& shape,
                                 int multiprocessors) {
  AttentionPlan plan;
  int keys = batch.max_context_len;
  if (shape.sliding_window > 0) keys = std::min(keys, shape.sliding_window);
  const int64_t blocks = num_tokens * ((shape.num_heads + kWarps - 1) / kWarps);
  const int64_t want = 4LL * std::max(multiprocessors, 1);
  int64_t splits = blocks >= want ? 1 : (want + blocks - 1) / std::max<int64_t>(blocks, 1);
  splits = std::min<int64_t>({splits, (keys + kMinKeysPerSplit - 1) / kMinKeysPerSplit, 64});
  plan.num_splits = static_cast<int>(std::max<int64_t>(splits, 1));
  const int per = (keys + plan.num_splits - 1) / plan.num_splits;
  plan.keys_per_split = std::max(32, (per + 31) / 32 * 32);
  plan.num_splits = std::max(1, (keys + plan.keys_per_split - 1) / plan.keys_per_split);
  if (plan.num_splits > 1) {
    plan.workspace_floats = num_tokens * shape.num_heads * plan.num_splits * (shape.head_dim + 2);
  }
  return plan;
}

void LaunchPagedAttention(const Tensor& qkv, const Tensor& cache_k, const Tensor& cache_v,
                          const PagedAttentionBatch& batch, const AttentionShape& shape, const AttentionPlan& plan,
                          float* workspace, Tensor& out, cudaStream_t stream) {
  const int64_t n = qkv.dim(0);
  const int d = shape.head_dim;
  Require(d > 0 && d <= 256, "PagedAttention", "head_dim must be in 1..256");
  Require(shape.num_kv_heads > 0 && shape.num_heads % shape.num_kv_heads == 0, "PagedAttention",
          "num_heads must be a multiple of num_kv_heads");
  Require(out.ndim() == 2 && out.dim(0) == n && out.dim(1) == static_cast<int64_t>(shape.num_heads) * d,
          "PagedAttention", "out must be [N, heads*head_dim]");
  Require(qkv.dtype() == out.dtype() && cache_k.dtype() == qkv.dtype() && cache_v.dtype() == qkv.dtype(),
          "PagedAttention", "qkv, caches and out must share a dtype");
  Require(batch.query_start.numel() == batch.num_seqs + 1 && batch.context_len.numel() == batch.num_seqs &&
              batch.block_tables.ndim() == 2 && batch.block_tables.dim(0) == batch.num_seqs,
          "PagedAttention", "batch tensors must be [S+1], [S] and [S, max_blocks]");
  Require(plan.num_splits == 1 || workspace != nullptr, "PagedAttention", "split plan without workspace");
  if (n == 0 || batch.num_seqs == 0) return;
  Params p;
  FillPagedKvParams(p, qkv, cache_k, cache_v, batch, shape);
  p.num_seqs = batch.num_seqs;
  p.head_dim = d;
  p.scale = shape.scale;
  p.window = shape.sliding_window;
  p.num_splits = plan.num_splits;
  p.keys_per_split = plan.keys_per_split;
  p.out = out.raw();
  p.workspace = workspace;
  // 16-byte K loads need every K row 16-byte aligned.
  const size_t elem = DTypeBytes(qkv.dtype(), 1);
  const bool vec = (d * elem) % 16 == 0 && reinterpret_cast<uintptr_t>(cache_k.raw()) % 16 == 0;
  // Prefill sequences go to the tensor-core kernel when it fits; this
  // kernel then takes only the short (decode) ones.
  const bool flash = FlashPrefillSupported(qkv.dtype(), d) && batch.max_query_len > kFlashMinQueryLen && vec &&
                     reinterpret_cast<uintptr_t>(cache_v.raw()) % 16 == 0 && qkv.dim(1) % 2 == 0 &&
                     reinterpret_cast<uintptr_t>(qkv.raw()) % 4 == 0 && reinterpret_cast<uintptr_t>(out.raw()) % 4 == 0;
  p.max_q_len = flash ? kFlashMinQueryLen : INT_MAX;
  if (flash) LaunchFlashPrefill(qkv, cache_k, cache_v, batch, shape, out, stream);
  BATON_DISPATCH_FLOAT(qkv.dtype(), "PagedAttention", LaunchForHeadDim<T>(p, n, vec, stream));
}

}  // namespace baton::cuda
