#include <cfloat>
#include <climits>

#include "runtime/backend/cuda/chained_launch.cuh"
#include "runtime/backend/cuda/common.cuh"
#include "runtime/backend/cuda/pack.cuh"
#include "runtime/backend/cuda/sample_tokens.cuh"

namespace baton::cuda {
namespace {

constexpr int kThreads = 1024;
constexpr int kWarps = kThreads / 32;
// As runtime/sampling/sampler.cc: 64 bins per logit below the max, 2048 bins.
constexpr int kTopPBins = 2048;
constexpr float kTopPBinsPerLogit = 64.0f;
constexpr int kMaxCutBin = 256;    // the host sorts a cut bin this small outright
constexpr int kScratchArrays = 4;  // processed logits, candidate ids, hole positions, walk order

__device__ __forceinline__ float NegInf() { return __int_as_float(0xff800000); }

// runtime/core/fast_exp.h's ExpNonPositive, operation for operation and
// with explicit rounding, so no multiply-add is fused: the host (x86-64-v2)
// has no FMA, and the weights must match it bit for bit.
__device__ __forceinline__ float ExpNonPositive(float x) {
  const unsigned magnitude = min(__float_as_uint(x) & 0x7FFFFFFFu, 0x42B00000u);
  x = __uint_as_float(magnitude | 0x80000000u);
  const float n = __fsub_rn(__fadd_rn(__fmul_rn(x, 1.44269504f), 12582912.0f), 12582912.0f);
  const float r = __fsub_rn(__fsub_rn(x, __fmul_rn(n, 0.693359375f)), __fmul_rn(n, -2.12194440e-4f));
  float p = 1.0f / 5040.0f;
  p = __fadd_rn(__fmul_rn(p, r), 1.0f / 720.0f);
  p = __fadd_rn(__fmul_rn(p, r), 1.0f / 120.0f);
  p = __fadd_rn(__fmul_rn(p, r), 1.0f / 24.0f);
  p = __fadd_rn(__fmul_rn(p, r), 1.0f / 6.0f);
  p = __fadd_rn(__fmul_rn(p, r), 0.5f);
  p = __fadd_rn(__fmul_rn(p, r), 1.0f);
  p = __fadd_rn(__fmul_rn(p, r), 1.0f);
  const int biased_exponent = max(static_cast<int>(n) + 127, 0);
  return __fmul_rn(p, __uint_as_float(static_cast<unsigned>(biased_exponent) << 23));
}

__device__ __forceinline__ float Weight(float logit, float max_logit) {
  return ExpNonPositive(__fsub_rn(logit, max_logit));
}

__device__ __forceinline__ int TopPBin(float logit, float max_logit) {
  const float distance = __fmul_rn(__fsub_rn(max_logit, logit), kTopPBinsPerLogit);
  return distance < static_cast<float>(kTopPBins - 1) ? static_cast<int>(distance) : kTopPBins - 1;
}

// Float bits mapped to unsigned so that unsigned order is float order.
__device__ __forceinline__ unsigned OrderKey(float v) {
  const unsigned u = __float_as_uint(v);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
__device__ __forceinline__ float FromOrderKey(unsigned k) {
  return __uint_as_float((k & 0x80000000u) ? (k & 0x7FFFFFFFu) : ~k);
}

// Exclusive prefix sum over the block; `total` gets the sum of all. The
// exclusive value comes from shuffling the inclusive one (not incl - v), so
// double sums stay exact sums of predecessors.
template <typename V>
__device__ V BlockExclusiveScan(V v, V* scratch, V& total) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  V incl = v;
  for (int o = 1; o < 32; o <<= 1) {
    const V up = __shfl_up_sync(0xffffffffu, incl, o);
    if (lane >= o) incl += up;
  }
  V excl = __shfl_up_sync(0xffffffffu, incl, 1);
  if (lane == 0) excl = V(0);
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 31) scratch[warp] = incl;
  __syncthreads();
  if (warp == 0) {
    V s = scratch[lane];
    for (int o = 1; o < 32; o <<= 1) {
      const V up = __shfl_up_sync(0xffffffffu, s, o);
      if (lane >= o) s += up;
    }
    scratch[lane] = s;
  }
  __syncthreads();
  total = scratch[kWarps - 1];
  return (warp > 0 ? scratch[warp - 1] : V(0)) + excl;
}

template <typename V>
__device__ V BlockSum(V v, V* scratch) {
  V total;
  BlockExclusiveScan(v, scratch, total);
  return total;
}

__device__ __forceinline__ bool Better(float av, int aid, float bv, int bid) {
  return av > bv || (av == bv && aid < bid);
}

// The host's ArgMax: lowest id among the largest values, NaN and -inf never
// win, id 0 when nothing is above -inf. Every thread gets the result.
// BlockReduceArgMax combines each thread's (best, best_id), found over
// rising ids with `>` (so each keeps its first maximum).
__device__ void BlockReduceArgMax(float* s_value, int* s_id, float& best, int& best_id) {
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, best, o);
    const int oid = __shfl_xor_sync(0xffffffffu, best_id, o);
    if (Better(ov, oid, best, best_id)) {
      best = ov;
      best_id = oid;
    }
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();
  if (lane == 0) {
    s_value[warp] = best;
    s_id[warp] = best_id;
  }
  __syncthreads();
  best = s_value[lane];
  best_id = s_id[lane];
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, best, o);
    const int oid = __shfl_xor_sync(0xffffffffu, best_id, o);
    if (Better(ov, oid, best, best_id)) {
      best = ov;
      best_id = oid;
    }
  }
}

__device__ void BlockArgMax(const float* p, int vocab, float* s_value, int* s_id, float& best, int& best_id) {
  best = NegInf();
  best_id = 0;
  for (int i = threadIdx.x; i < vocab; i += kThreads) {
    const float v = p[i];
    if (v > best) {
      best = v;
      best_id = i;
    }
  }
  BlockReduceArgMax(s_value, s_id, best, best_id);
}

// The k-th largest value above -inf (NaN excluded), counting equal values
// separately; -inf when fewer than k exist. Radix select, 8 bits a pass.
__device__ float KthLargest(const float* p, int vocab, int k, int* hist, int* s_digit, int* s_k) {
  unsigned prefix = 0, mask = 0;
  if (threadIdx.x == 0) *s_k = k;
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int i = threadIdx.x; i < 256; i += kThreads) hist[i] = 0;
    __syncthreads();
    for (int i = threadIdx.x; i < vocab; i += kThreads) {
      const float v = p[i];
      if (!(v > NegInf())) continue;
      const unsigned key = OrderKey(v);
      if ((key & mask) == prefix) atomicAdd(&hist[(key >> shift) & 255u], 1);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      int remaining = *s_k, d = 255;
      for (; d >= 0; --d) {
        if (hist[d] >= remaining) break;
        remaining -= hist[d];
      }
      *s_digit = d;
      *s_k = remaining;
    }
    __syncthreads();
    const int d = *s_digit;
    if (d < 0) return NegInf();  // fewer than k values (only possible in the first pass)
    prefix |= static_cast<unsigned>(d) << shift;
    mask |= 255u << shift;
  }
  return FromOrderKey(prefix);
}

struct SharedState {
  double bin_mass[kTopPBins];
  double scan_double[kWarps];
  int scan_int[kWarps];
  float arg_value[kWarps];
  int arg_id[kWarps];
  int hist[256];
  int digit, remaining;
  int cut_bin;
  double above;
  int cut_count;
  int cut_kept;
  int cut_id[kMaxCutBin];
  float cut_logit[kMaxCutBin];
  int sorted_id[kMaxCutBin];
  float sorted_weight[kMaxCutBin];
  int hit, last;
};

template <typename T>
__global__ void __launch_bounds__(kThreads) SampleTokensKernel(const T* logits, int vocab, const SampleRow* rows,
                                                               const int32_t* context, float* work, int32_t* tokens) {
  AllowNextGrid();
  WaitForPriorGrid();
  __shared__ SharedState sh;
  const int row = blockIdx.x, tid = threadIdx.x;
  const SampleRow prm = rows[row];
  const T* in = logits + static_cast<int64_t>(row) * vocab;
  float* p = work + static_cast<int64_t>(row) * vocab * kScratchArrays;
  int* cand_id = reinterpret_cast<int*>(p + vocab);
  int* hole_pos = cand_id + vocab;
  int* order_id = hole_pos + vocab;
  const bool greedy = prm.temperature == 0.0f;
  const float t = greedy ? 1.0f : prm.temperature;

  // Temperature, then the repetition penalty recomputed from the input for
  // the context's ids (Sampler::CopyLogits).
  for (int i = tid; i < vocab; i += kThreads) {
    const float x = ToF(in[i]);
    p[i] = t == 1.0f ? x : __fdiv_rn(x, t);
  }
  __syncthreads();
  const float penalty = prm.repetition_penalty;
  if (penalty != 1.0f) {
    for (int j = prm.context_begin + tid; j < prm.context_end; j += kThreads) {
      const int id = context[j];
      if (id < 0 || id >= vocab) continue;
      const float x = ToF(in[id]);
      p[id] = __fdiv_rn(x < 0.0f ? __fmul_rn(x, penalty) : __fdiv_rn(x, penalty), t);  // repeats write equal values
    }
    __syncthreads();
  }

  float max_logit;
  int top;
  BlockArgMax(p, vocab, sh.arg_value, sh.arg_id, max_logit, top);
  if (greedy || !isfinite(max_logit)) {
    if (tid == 0) tokens[row] = top;
    return;
  }

  const float threshold = prm.top_k > 0 && prm.top_k < vocab
                              ? KthLargest(p, vocab, prm.top_k, sh.hist, &sh.digit, &sh.remaining)
                              : NegInf();
  auto is_candidate = [&](float v) { return v >= threshold && v != NegInf(); };

  double local = 0.0;
  for (int i = tid; i < vocab; i += kThreads) {
    const float v = p[i];
    if (is_candidate(v)) local += Weight(v, max_logit);
  }
  double total = BlockSum(local, sh.scan_double);

  // Top-p (Sampler::KeepTopP): whole bins while the mass above stays below
  // top_p * total, then the cut bin's tokens by rank while it still does.
  const bool top_p = prm.top_p < 1.0f;
  int cut_bin = kTopPBins, cut_kept = 0;
  if (top_p) {
    for (int b = tid; b < kTopPBins; b += kThreads) sh.bin_mass[b] = 0.0;
    if (tid == 0) sh.cut_count = 0;
    __syncthreads();
    for (int i = tid; i < vocab; i += kThreads) {
      const float v = p[i];
      if (is_candidate(v)) atomicAdd(&sh.bin_mass[TopPBin(v, max_logit)], static_cast<double>(Weight(v, max_logit)));
    }
    __syncthreads();
    const double limit = static_cast<double>(prm.top_p) * total;
    if (tid == 0) {
      int b = 0;
      double above = 0.0;
      while (b + 1 < kTopPBins && above + sh.bin_mass[b] < limit) above += sh.bin_mass[b++];
      sh.cut_bin = b;
      sh.above = above;
    }
    __syncthreads();
    cut_bin = sh.cut_bin;
    for (int i = tid; i < vocab; i += kThreads) {
      const float v = p[i];
      if (!is_candidate(v) || TopPBin(v, max_logit) != cut_bin) continue;
      const int slot = atomicAdd(&sh.cut_count, 1);
      if (slot < kMaxCutBin) {
        sh.cut_id[slot] = i;
        sh.cut_logit[slot] = v;
      }
    }
    __syncthreads();
    const int count = sh.cut_count;
    if (count > kMaxCutBin) {  // the host orders this bin with nth_element
      if (tid == 0) tokens[row] = kSampleOnHost;
      return;
    }
    if (tid < count) {
      const float v = sh.cut_logit[tid];
      const int id = sh.cut_id[tid];
      int rank = 0;
      for (int j = 0; j < count; ++j) rank += Better(sh.cut_logit[j], sh.cut_id[j], v, id);
      sh.sorted_id[rank] = id;
      sh.sorted_weight[rank] = Weight(v, max_logit);
    }
    __syncthreads();
    if (tid == 0) {
      int keep = 0;
      double above = sh.above;
      while (keep < count && above < limit) above += sh.sorted_weight[keep++];
      sh.cut_kept = keep;
      sh.above = above;
    }
    __syncthreads();
    cut_kept = sh.cut_kept;
    total = sh.above;
  }

  // Min-p (Sampler::KeepMinP). The largest weight is the top token's,
  // ExpNonPositive(0) = 1, and the top token always survives top-k/top-p.
  const bool min_p = prm.min_p > 0.0f;
  const double min_p_threshold = static_cast<double>(prm.min_p) * (static_cast<double>(ExpNonPositive(0.0f)) / total);
  const double min_p_total = total;
  auto walk_weight = [&](float v) -> float {
    const float w = Weight(v, max_logit);
    return min_p && static_cast<double>(w) / min_p_total < min_p_threshold ? 0.0f : w;
  };

  // The walk order. Without top-p: candidates by id, position = id. With
  // top-p: the candidates (by id) partitioned by "bin above the cut" as
  // libstdc++ does (the i-th hole from the left, a non-kept candidate
  // among the first m, takes the i-th kept one from the right), then the
  // cut bin's kept tokens by rank.
  int positions = vocab;
  if (top_p) {
    const int chunk = (vocab + kThreads - 1) / kThreads;
    const int begin = min(tid * chunk, vocab), end = min(begin + chunk, vocab);
    int n_local = 0, m_local = 0;
    for (int i = begin; i < end; ++i) {
      const float v = p[i];
      if (!is_candidate(v)) continue;
      ++n_local;
      m_local += TopPBin(v, max_logit) < cut_bin;
    }
    int n, m;
    int base = BlockExclusiveScan(n_local, sh.scan_int, n);
    BlockExclusiveScan(m_local, sh.scan_int, m);
    for (int i = begin; i < end; ++i) {
      if (is_candidate(p[i])) cand_id[base++] = i;
    }
    __syncthreads();
    const int cchunk = (n + kThreads - 1) / kThreads;
    const int cbegin = min(tid * cchunk, n), cend = min(cbegin + cchunk, n);
    int holes_local = 0, movers_local = 0;
    for (int c = cbegin; c < cend; ++c) {
      const bool sure = TopPBin(p[cand_id[c]], max_logit) < cut_bin;
      holes_local += c < m && !sure;
      movers_local += c >= m && sure;
    }
    int holes, movers;
    int hole_rank = BlockExclusiveScan(holes_local, sh.scan_int, holes);
    int mover_rank = BlockExclusiveScan(movers_local, sh.scan_int, movers);
    for (int c = cbegin; c < cend; ++c) {
      if (c < m && !(TopPBin(p[cand_id[c]], max_logit) < cut_bin)) hole_pos[hole_rank++] = c;
    }
    __syncthreads();
    for (int c = cbegin; c < cend; ++c) {
      const int id = cand_id[c];
      if (!(TopPBin(p[id], max_logit) < cut_bin)) continue;
      if (c < m) {
        order_id[c] = id;
      } else {
        order_id[hole_pos[movers - 1 - mover_rank++]] = id;
      }
    }
    if (tid < cut_kept) order_id[m + tid] = sh.sorted_id[tid];
    __syncthreads();
    positions = m + cut_kept;
  }
  auto id_at = [&](int pos) { return top_p ? order_id[pos] : pos; };
  auto weight_at = [&](int pos) -> float {
    const int id = id_at(pos);
    const float v = p[id];
    return top_p || is_candidate(v) ? walk_weight(v) : 0.0f;
  };

  // Inverse CDF (Sampler::Draw): the first position whose cumulative weight
  // exceeds uniform * total, else the last with weight.
  const int chunk = (positions + kThreads - 1) / kThreads;
  const int begin = min(tid * chunk, positions), end = min(begin + chunk, positions);
  double mine = 0.0;
  for (int pos = begin; pos < end; ++pos) {
    const float w = weight_at(pos);
    if (w > 0.0f) mine += w;
  }
  double kept_total;
  double cumulative = BlockExclusiveScan(mine, sh.scan_double, kept_total);
  if (min_p) total = kept_total;
  const double u = prm.uniform * total;
  if (tid == 0) {
    sh.hit = INT_MAX;
    sh.last = -1;
  }
  __syncthreads();
  int last = -1;
  for (int pos = begin; pos < end; ++pos) {
    const float w = weight_at(pos);
    if (w <= 0.0f) continue;
    cumulative += w;
    last = pos;
    if (u < cumulative) {
      atomicMin(&sh.hit, pos);
      break;
    }
  }
  if (last >= 0) atomicMax(&sh.last, last);
  __syncthreads();
  if (tid == 0) {
    const int pos = sh.hit != INT_MAX ? sh.hit : sh.last;
    tokens[row] = pos >= 0 ? id_at(pos) : top;
  }
}

// Greedy rows without a repetition penalty: the sampler's token is the
// argmax of the raw row, which this reads once with 16-byte loads (kUnroll
// packs in flight a thread) and no scratch, where SampleTokensKernel writes
// and rereads a float copy of the row (54 us for a 128k vocabulary on an
// H100, against a 0.17 ms LM head).
constexpr int kGreedyUnroll = 4;

template <typename T, int W>
__global__ void __launch_bounds__(kThreads)
    GreedyTokensKernel(const T* logits, int vocab, int32_t* tokens, StepTokenLandings landings) {
  AllowNextGrid();
  WaitForPriorGrid();
  __shared__ float s_value[kWarps];
  __shared__ int s_id[kWarps];
  const T* in = logits + static_cast<int64_t>(blockIdx.x) * vocab;
  const int packs = vocab / W;
  float best = NegInf();
  int best_id = 0;
  for (int base = threadIdx.x; base < packs; base += kThreads * kGreedyUnroll) {
    Pack<T, W> p[kGreedyUnroll];
#pragma unroll
    for (int i = 0; i < kGreedyUnroll; ++i) {
      if (base + i * kThreads < packs) p[i] = LoadPack<W>(in + static_cast<int64_t>(base + i * kThreads) * W);
    }
#pragma unroll
    for (int i = 0; i < kGreedyUnroll; ++i) {
      if (base + i * kThreads >= packs) break;
#pragma unroll
      for (int u = 0; u < W; ++u) {
        const float v = ToF(p[i].v[u]);
        if (v > best) {  // ids rise within a thread
          best = v;
          best_id = (base + i * kThreads) * W + u;
        }
      }
    }
  }
  BlockReduceArgMax(s_value, s_id, best, best_id);
  if (threadIdx.x == 0) {
    tokens[blockIdx.x] = best_id;
    if (landings.steps != nullptr) landings.at[(*landings.steps - 1) % StepTokenLandings::kCount][blockIdx.x] = best_id;
  }
}

}  // namespace

void LaunchGreedyTokens(const Tensor& logits, int32_t* tokens, cudaStream_t stream, const StepTokenLandings& landings) {
  Require(logits.ndim() == 2 && logits.dim(1) > 0 && logits.dim(1) < INT_MAX, "SampleTokens",
          "logits must be [rows, vocab] with 0 < vocab < 2^31");
  const int64_t n = logits.dim(0);
  if (n == 0) return;
  const int vocab = static_cast<int>(logits.dim(1));
  BATON_DISPATCH_FLOAT(
      logits.dtype(), "SampleTokens", const int pack = PackWidthFor<T>(vocab, {logits.raw()}); BATON_DISPATCH_PACK(
          T, pack,
          LaunchChained("SampleTokens (greedy)", GreedyTokensKernel<T, W>, dim3(static_cast<unsigned>(n)),
                        dim3(kThreads), 0, stream, static_cast<const T*>(logits.raw()), vocab, tokens, landings)));
  CheckLaunch("SampleTokens (greedy)");
}

size_t SampleTokensWorkspaceBytes(int64_t rows, int64_t vocab) {
  return static_cast<size_t>(rows) * static_cast<size_t>(vocab) * kScratchArrays * sizeof(float);
}

void LaunchSampleTokens(const Tensor& logits, const SampleRow* rows, const int32_t* context, void* workspace,
                        int32_t* tokens, cudaStream_t stream) {
  Require(logits.ndim() == 2, "SampleTokens", "logits must be [rows, vocab]");
  Require(logits.dim(1) > 0 && logits.dim(1) < INT_MAX / kScratchArrays, "SampleTokens", "vocab out of range");
  const int64_t n = logits.dim(0);
  if (n == 0) return;
  const int vocab = static_cast<int>(logits.dim(1));
  BATON_DISPATCH_FLOAT(
      logits.dtype(), "SampleTokens",
      LaunchChained("SampleTokens", SampleTokensKernel<T>, dim3(static_cast<unsigned>(n)), dim3(kThreads), 0, stream,
                    static_cast<const T*>(logits.raw()), vocab, rows, context, static_cast<float*>(workspace), tokens));
  CheckLaunch("SampleTokens");
}

}  // namespace baton::cuda
