#include <algorithm>
#include <cstring>
#include <string>
#include <type_traits>

#include "runtime/backend/cuda/common.cuh"
#include "runtime/backend/cuda/cuda_check.h"
#include "runtime/backend/cuda/training/flash_attention_train.cuh"

namespace baton::cuda {
namespace {

constexpr int kBlock = 64;     // query rows (forward) or keys (backward) a CTA owns, and the tile it walks
constexpr int kThreads = 128;  // 4 warps, 16 of the CTA's rows each
constexpr int kMaxSeqs = 128;  // sequences per launch (their offsets travel in the kernel parameters)
constexpr float kLog2e = 1.4426950408889634f;

// Row offsets of up to kMaxSeqs sequences: sequence s is rows
// [start[s], start[s + 1]) of qkv.
struct SeqTable {
  int count;
  int start[kMaxSeqs + 1];
};

struct Params {
  const void* qkv;
  const void* out;   // backward: the forward's O
  const void* dout;  // backward
  void* dst;         // forward: O; backward: dqkv
  float* lse_out;    // forward; null: not wanted (inference prefill)
  const float* lse;  // backward
  float* dq;         // backward scratch [R, q] F32, row 0 = first_row
  float* dsum;       // backward scratch [R, heads] F32: D = rowsum(dO * O)
  int64_t width;     // qkv / dqkv row length
  int64_t q_cols;    // heads * head_dim (out / dout row length)
  int64_t kv_cols;
  int heads, group, window, first_row;
  float scale, scale_log2;
  SeqTable seqs;
};

// ---- tile helpers --------------------------------------------------------
// A tile is kBlock rows of C 16-bit elements in shared memory, its 16-byte
// chunks swizzled (chunk c of row r stored at c ^ (r & 7)) so that the 8
// row addresses of an ldmatrix hit 8 different bank groups.
template <int C>
__device__ __forceinline__ int Sw(int r, int c) {
  return r * C + ((((c >> 3) ^ (r & 7)) << 3) | (c & 7));
}

__device__ __forceinline__ uint32_t SmemAddr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void CpAsync16(uint32_t dst, const void* src, bool valid) {
  // src-size 0 zero-fills the 16 bytes without reading src.
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void CpAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void CpAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// Rows [0, valid) of a kBlock x D tile whose row 0 is at `src` (row stride
// ld elements) into `tile`; rows past `valid` are zero.
template <int D>
__device__ __forceinline__ void LoadTile(uint16_t* tile, const uint16_t* src, int64_t ld, int valid) {
  constexpr int kChunksPerRow = D / 8;
  for (int i = threadIdx.x; i < kBlock * kChunksPerRow; i += kThreads) {
    const int r = i / kChunksPerRow, c = (i % kChunksPerRow) * 8;
    const bool ok = r < valid;
    CpAsync16(SmemAddr(tile + Sw<D>(r, c)), ok ? src + r * ld + c : src, ok);
  }
}

__device__ __forceinline__ void Ldm4(uint32_t (&r)[4], const uint16_t* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(SmemAddr(p)));
}
__device__ __forceinline__ void Ldm4T(uint32_t (&r)[4], const uint16_t* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(SmemAddr(p)));
}

// Fragment loads (PTX m16n8k16 layouts), lane = threadIdx.x & 31:
// A (16 x 16) from a tile stored [m][k], rows m0.., columns k0..
template <int C>
__device__ __forceinline__ void LoadA(uint32_t (&a)[4], const uint16_t* tile, int m0, int k0, int lane) {
  Ldm4(a, tile + Sw<C>(m0 + (lane & 15), k0 + (lane >> 4) * 8));
}
// A (16 x 16) from a tile stored [k][m] (transposed).
template <int C>
__device__ __forceinline__ void LoadAT(uint32_t (&a)[4], const uint16_t* tile, int m0, int k0, int lane) {
  Ldm4T(a, tile + Sw<C>(k0 + (lane & 7) + (lane >> 4) * 8, m0 + ((lane >> 3) & 1) * 8));
}
// B for two n-tiles (n0.., n0+8..; regs {0,1} and {2,3}) from a tile stored [n][k].
template <int C>
__device__ __forceinline__ void LoadB(uint32_t (&b)[4], const uint16_t* tile, int n0, int k0, int lane) {
  Ldm4(b, tile + Sw<C>(n0 + (lane & 7) + (lane >> 4) * 8, k0 + ((lane >> 3) & 1) * 8));
}
// B for two n-tiles from a tile stored [k][n].
template <int C>
__device__ __forceinline__ void LoadBT(uint32_t (&b)[4], const uint16_t* tile, int n0, int k0, int lane) {
  Ldm4T(b, tile + Sw<C>(k0 + (lane & 7) + ((lane >> 3) & 1) * 8, n0 + (lane >> 4) * 8));
}

template <typename T>
__device__ __forceinline__ void Mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

// Two floats as T x2 in one register (lo in the low half).
template <typename T>
__device__ __forceinline__ uint32_t Pack(float lo, float hi) {
  uint32_t r;
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    memcpy(&r, &v, 4);
  } else {
    const __half2 v = __floats2half2_rn(lo, hi);
    memcpy(&r, &v, 4);
  }
  return r;
}

// The A fragment of key (or query) chunk kk of a 16 x 64 accumulator
// (8 n-tiles): its C layout is A's layout once packed.
template <typename T>
__device__ __forceinline__ void AccToA(uint32_t (&a)[4], const float (&s)[8][4], int kk) {
  a[0] = Pack<T>(s[2 * kk][0], s[2 * kk][1]);
  a[1] = Pack<T>(s[2 * kk][2], s[2 * kk][3]);
  a[2] = Pack<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]);
  a[3] = Pack<T>(s[2 * kk + 1][2], s[2 * kk + 1][3]);
}

// Whether key k is visible to query q (both within the sequence).
__device__ __forceinline__ bool Visible(int q, int k, int window) { return k <= q && (window == 0 || q - k < window); }

// ---- forward --------------------------------------------------------------
// Grid (heads, sequences, query blocks); query blocks go in reverse order so
// the longest CTAs start first. Shared: Q tile, then 2 stages of K and V.
template <typename T, int D>
__global__ void __launch_bounds__(kThreads) FlashForwardKernel(const __grid_constant__ Params p) {
  extern __shared__ __align__(16) uint16_t smem[];
  constexpr int kTile = kBlock * D;
  uint16_t* qs = smem;
  uint16_t* ks = smem + kTile;      // stage s at ks + 2 s kTile
  uint16_t* vs = smem + 2 * kTile;  // stage s at vs + 2 s kTile

  const int seq = blockIdx.y, row0 = p.seqs.start[seq], len = p.seqs.start[seq + 1] - row0;
  const int qb = static_cast<int>(gridDim.z) - 1 - static_cast<int>(blockIdx.z);
  const int q0 = qb * kBlock;
  if (q0 >= len) return;
  const int h = blockIdx.x, g = h / p.group;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int kbegin = p.window > 0 ? max(0, q0 - p.window + 1) : 0;
  const int kend = min(len, q0 + kBlock);
  const int kt0 = kbegin / kBlock, kt1 = (kend + kBlock - 1) / kBlock;

  const uint16_t* base = static_cast<const uint16_t*>(p.qkv) + static_cast<int64_t>(row0) * p.width;
  const uint16_t* kcol = base + p.q_cols + static_cast<int64_t>(g) * D;
  const uint16_t* vcol = kcol + p.kv_cols;
  LoadTile<D>(qs, base + static_cast<int64_t>(q0) * p.width + static_cast<int64_t>(h) * D, p.width, len - q0);
  LoadTile<D>(ks, kcol + static_cast<int64_t>(kt0) * kBlock * p.width, p.width, len - kt0 * kBlock);
  LoadTile<D>(vs, vcol + static_cast<int64_t>(kt0) * kBlock * p.width, p.width, len - kt0 * kBlock);
  CpAsyncCommit();

  uint32_t qf[D / 16][4];
  float o[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
  // This thread's two query rows (C layout rows lane/4 and lane/4 + 8).
  const int qrow[2] = {q0 + warp * 16 + (lane >> 2), q0 + warp * 16 + (lane >> 2) + 8};

  for (int kt = kt0; kt < kt1; ++kt) {
    const int stage = (kt - kt0) & 1;
    if (kt + 1 < kt1) {
      const int next = (kt + 1) * kBlock;
      LoadTile<D>(ks + (stage ^ 1) * 2 * kTile, kcol + static_cast<int64_t>(next) * p.width, p.width, len - next);
      LoadTile<D>(vs + (stage ^ 1) * 2 * kTile, vcol + static_cast<int64_t>(next) * p.width, p.width, len - next);
      CpAsyncCommit();
      CpAsyncWait<1>();
    } else {
      CpAsyncWait<0>();
    }
    __syncthreads();
    if (kt == kt0) {
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) LoadA<D>(qf[kk], qs, warp * 16, kk * 16, lane);
    }
    const uint16_t* kst = ks + stage * 2 * kTile;
    const uint16_t* vst = vs + stage * 2 * kTile;

    float s[8][4];
#pragma unroll
    for (int i = 0; i < 8; ++i) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
#pragma unroll
      for (int np = 0; np < 4; ++np) {
        uint32_t b[4];
        LoadB<D>(b, kst, np * 16, kk * 16, lane);
        Mma<T>(s[2 * np], qf[kk], b[0], b[1]);
        Mma<T>(s[2 * np + 1], qf[kk], b[2], b[3]);
      }
    }
    const int k0 = kt * kBlock;
    const bool mask = k0 + kBlock - 1 > q0 || k0 + kBlock > len || (p.window > 0 && q0 + kBlock - 1 - k0 >= p.window);
    if (mask) {
#pragma unroll
      for (int nt = 0; nt < 8; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int k = k0 + nt * 8 + (lane & 3) * 2 + (e & 1);
          if (k >= len || !Visible(qrow[e >> 1], k, p.window)) s[nt][e] = -INFINITY;
        }
      }
    }
    // Online softmax over this tile, rows i = 0 (regs 0,1) and 1 (regs 2,3).
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      float mx = -INFINITY;
#pragma unroll
      for (int nt = 0; nt < 8; ++nt) mx = fmaxf(mx, fmaxf(s[nt][2 * i], s[nt][2 * i + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float mn = fmaxf(m[i], mx);
      const float sub = mn == -INFINITY ? 0.0f : mn * p.scale_log2;  // a row with nothing visible yet
      const float corr = exp2f(m[i] * p.scale_log2 - sub);
      m[i] = mn;
      float sum = 0.0f;
#pragma unroll
      for (int nt = 0; nt < 8; ++nt) {
        s[nt][2 * i] = exp2f(s[nt][2 * i] * p.scale_log2 - sub);
        s[nt][2 * i + 1] = exp2f(s[nt][2 * i + 1] * p.scale_log2 - sub);
        sum += s[nt][2 * i] + s[nt][2 * i + 1];
      }
      l[i] = l[i] * corr + sum;
#pragma unroll
      for (int dt = 0; dt < D / 8; ++dt) {
        o[dt][2 * i] *= corr;
        o[dt][2 * i + 1] *= corr;
      }
    }
    // O += P V.
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      uint32_t a[4];
      AccToA<T>(a, s, kk);
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        uint32_t b[4];
        LoadBT<D>(b, vst, dp * 16, kk * 16, lane);
        Mma<T>(o[2 * dp], a, b[0], b[1]);
        Mma<T>(o[2 * dp + 1], a, b[2], b[3]);
      }
    }
    __syncthreads();  // this stage is refilled two tiles on
  }

  T* out = static_cast<T*>(p.dst);
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    float sum = l[i];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    if (qrow[i] >= len) continue;
    const float inv = 1.0f / sum;  // sum >= 1: the row's own key is visible
    const int64_t row = row0 + qrow[i];
    uint32_t* dst = reinterpret_cast<uint32_t*>(out + row * p.q_cols + static_cast<int64_t>(h) * D + (lane & 3) * 2);
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt) dst[dt * 4] = Pack<T>(o[dt][2 * i] * inv, o[dt][2 * i + 1] * inv);
    if ((lane & 3) == 0 && p.lse_out != nullptr) p.lse_out[row * p.heads + h] = m[i] * p.scale + logf(sum);
  }
}

// ---- backward --------------------------------------------------------------
// D[r, h] = dO[r, h, :] . O[r, h, :] for the rows [first_row, first_row + rows):
// a warp per (row, head).
template <typename T, int D>
__global__ void __launch_bounds__(256) RowDotKernel(const __grid_constant__ Params p, int64_t pairs) {
  const int64_t w = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (w >= pairs) return;
  const int64_t r = w / p.heads;
  const int h = static_cast<int>(w % p.heads);
  const int64_t at = (p.first_row + r) * p.q_cols + static_cast<int64_t>(h) * D;
  const T* o = static_cast<const T*>(p.out) + at;
  const T* g = static_cast<const T*>(p.dout) + at;
  float dot = 0.0f;
#pragma unroll
  for (int c = lane; c < D; c += 32) dot += ToF(o[c]) * ToF(g[c]);
  dot = WarpSum(dot);
  if (lane == 0) p.dsum[w] = dot;
}

// Grid (kv heads, sequences, key blocks). Shared: K, V, 2 stages of Q and
// dO, the dS^T tile (64 x 64), 2 stages of lse * log2(e) and D (64 floats).
template <typename T, int D>
__global__ void __launch_bounds__(kThreads) FlashBackwardKernel(const __grid_constant__ Params p) {
  extern __shared__ __align__(16) uint16_t smem[];
  constexpr int kTile = kBlock * D;
  uint16_t* ks = smem;
  uint16_t* vs = smem + kTile;
  uint16_t* qs = smem + 2 * kTile;                                 // stage s at qs + 2 s kTile
  uint16_t* dos = smem + 3 * kTile;                                // stage s at dos + 2 s kTile
  uint16_t* dss = smem + 6 * kTile;                                // [key][query]
  float* lse_s = reinterpret_cast<float*>(dss + kBlock * kBlock);  // stage s at lse_s + 2 s kBlock
  float* d_s = lse_s + kBlock;                                     // stage s at d_s + 2 s kBlock

  const int seq = blockIdx.y, row0 = p.seqs.start[seq], len = p.seqs.start[seq + 1] - row0;
  const int k0 = static_cast<int>(blockIdx.z) * kBlock;
  if (k0 >= len) return;
  const int g = blockIdx.x;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int qend = p.window > 0 ? min(len, k0 + kBlock - 1 + p.window) : len;
  const int qt0 = k0 / kBlock, nq = (qend + kBlock - 1) / kBlock - qt0;
  const int iters = p.group * nq;  // (head of the group, query block) pairs

  const uint16_t* base = static_cast<const uint16_t*>(p.qkv) + static_cast<int64_t>(row0) * p.width;
  const uint16_t* dobase = static_cast<const uint16_t*>(p.dout) + static_cast<int64_t>(row0) * p.q_cols;
  const int64_t kcol = p.q_cols + static_cast<int64_t>(g) * D, vcol = kcol + p.kv_cols;
  LoadTile<D>(ks, base + static_cast<int64_t>(k0) * p.width + kcol, p.width, len - k0);
  LoadTile<D>(vs, base + static_cast<int64_t>(k0) * p.width + vcol, p.width, len - k0);
  // Iteration it: head g * group + it / nq, query block qt0 + it % nq.
  auto load = [&](int it, int stage) {
    const int h = g * p.group + it / nq, q0 = (qt0 + it % nq) * kBlock;
    LoadTile<D>(qs + stage * 2 * kTile, base + static_cast<int64_t>(q0) * p.width + static_cast<int64_t>(h) * D,
                p.width, len - q0);
    LoadTile<D>(dos + stage * 2 * kTile, dobase + static_cast<int64_t>(q0) * p.q_cols + static_cast<int64_t>(h) * D,
                p.q_cols, len - q0);
    if (threadIdx.x < kBlock) {
      const int q = q0 + threadIdx.x;
      const int64_t r = static_cast<int64_t>(row0) + q;
      // Rows past the sequence get P = exp2(s - inf) = 0.
      lse_s[stage * 2 * kBlock + threadIdx.x] = q < len ? p.lse[r * p.heads + h] * kLog2e : INFINITY;
      d_s[stage * 2 * kBlock + threadIdx.x] = q < len ? p.dsum[(r - p.first_row) * p.heads + h] : 0.0f;
    }
  };
  load(0, 0);
  CpAsyncCommit();

  float dk[D / 8][4], dv[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; ++i) {
    dk[i][0] = dk[i][1] = dk[i][2] = dk[i][3] = 0.0f;
    dv[i][0] = dv[i][1] = dv[i][2] = dv[i][3] = 0.0f;
  }
  // This thread's two keys (C layout rows lane/4 and lane/4 + 8 of the warp's 16).
  const int krow[2] = {k0 + warp * 16 + (lane >> 2), k0 + warp * 16 + (lane >> 2) + 8};
  // At head_dim 64 the warp's K and V A-fragments (32 registers) stay in
  // registers across the iterations (fewer shared-memory loads); at 128 they
  // would spill, so they are reloaded each time.
  constexpr bool kHoldKv = D == 64;
  constexpr int kHeld = kHoldKv ? D / 16 : 1;
  uint32_t kf[kHeld][4], vf[kHeld][4];

  for (int it = 0; it < iters; ++it) {
    const int stage = it & 1;
    if (it + 1 < iters) {
      load(it + 1, stage ^ 1);
      CpAsyncCommit();
      CpAsyncWait<1>();
    } else {
      CpAsyncWait<0>();
    }
    __syncthreads();
    if (kHoldKv && it == 0) {
#pragma unroll
      for (int kk = 0; kk < kHeld; ++kk) {
        LoadA<D>(kf[kk], ks, warp * 16, kk * 16, lane);
        LoadA<D>(vf[kk], vs, warp * 16, kk * 16, lane);
      }
    }
    const int h = g * p.group + it / nq, q0 = (qt0 + it % nq) * kBlock;
    const uint16_t* qst = qs + stage * 2 * kTile;
    const uint16_t* dost = dos + stage * 2 * kTile;
    const float* lse_t = lse_s + stage * 2 * kBlock;
    const float* d_t = d_s + stage * 2 * kBlock;

    // S^T = K Q^T (the warp's 16 keys x 64 queries), then P^T.
    float s[8][4];
#pragma unroll
    for (int i = 0; i < 8; ++i) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      uint32_t a[4];
      if constexpr (kHoldKv) {
        a[0] = kf[kk][0], a[1] = kf[kk][1], a[2] = kf[kk][2], a[3] = kf[kk][3];
      } else {
        LoadA<D>(a, ks, warp * 16, kk * 16, lane);
      }
#pragma unroll
      for (int np = 0; np < 4; ++np) {
        uint32_t b[4];
        LoadB<D>(b, qst, np * 16, kk * 16, lane);
        Mma<T>(s[2 * np], a, b[0], b[1]);
        Mma<T>(s[2 * np + 1], a, b[2], b[3]);
      }
    }
    const bool mask = q0 < k0 + kBlock - 1 || k0 + kBlock > len || (p.window > 0 && q0 + kBlock - 1 - k0 >= p.window);
#pragma unroll
    for (int nt = 0; nt < 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int qc = nt * 8 + (lane & 3) * 2 + (e & 1);
        const int k = krow[e >> 1];
        const bool vis = !mask || (k < len && Visible(q0 + qc, k, p.window));
        s[nt][e] = vis ? exp2f(s[nt][e] * p.scale_log2 - lse_t[qc]) : 0.0f;
      }
    }
    // dV += P^T dO.
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      uint32_t a[4];
      AccToA<T>(a, s, kk);
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        uint32_t b[4];
        LoadBT<D>(b, dost, dp * 16, kk * 16, lane);
        Mma<T>(dv[2 * dp], a, b[0], b[1]);
        Mma<T>(dv[2 * dp + 1], a, b[2], b[3]);
      }
    }
    // dP^T = V dO^T, then dS^T = P^T (dP^T - D) in place of P^T.
    {
      float dp[8][4];
#pragma unroll
      for (int i = 0; i < 8; ++i) dp[i][0] = dp[i][1] = dp[i][2] = dp[i][3] = 0.0f;
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        uint32_t a[4];
        if constexpr (kHoldKv) {
          a[0] = vf[kk][0], a[1] = vf[kk][1], a[2] = vf[kk][2], a[3] = vf[kk][3];
        } else {
          LoadA<D>(a, vs, warp * 16, kk * 16, lane);
        }
#pragma unroll
        for (int np = 0; np < 4; ++np) {
          uint32_t b[4];
          LoadB<D>(b, dost, np * 16, kk * 16, lane);
          Mma<T>(dp[2 * np], a, b[0], b[1]);
          Mma<T>(dp[2 * np + 1], a, b[2], b[3]);
        }
      }
#pragma unroll
      for (int nt = 0; nt < 8; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) s[nt][e] *= dp[nt][e] - d_t[nt * 8 + (lane & 3) * 2 + (e & 1)];
      }
    }
    // dK += dS^T Q (scaled at the end); dS^T to shared memory for dQ.
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      uint32_t a[4];
      AccToA<T>(a, s, kk);
      const int kr = warp * 16 + (lane >> 2), qc = kk * 16 + (lane & 3) * 2;
      *reinterpret_cast<uint32_t*>(dss + Sw<kBlock>(kr, qc)) = a[0];
      *reinterpret_cast<uint32_t*>(dss + Sw<kBlock>(kr + 8, qc)) = a[1];
      *reinterpret_cast<uint32_t*>(dss + Sw<kBlock>(kr, qc + 8)) = a[2];
      *reinterpret_cast<uint32_t*>(dss + Sw<kBlock>(kr + 8, qc + 8)) = a[3];
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        uint32_t b[4];
        LoadBT<D>(b, qst, dp * 16, kk * 16, lane);
        Mma<T>(dk[2 * dp], a, b[0], b[1]);
        Mma<T>(dk[2 * dp + 1], a, b[2], b[3]);
      }
    }
    __syncthreads();
    // dQ (the warp's 16 queries x D) = scale dS K, added into the F32 scratch.
    {
      float dq[D / 8][4];
#pragma unroll
      for (int i = 0; i < D / 8; ++i) dq[i][0] = dq[i][1] = dq[i][2] = dq[i][3] = 0.0f;
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        uint32_t a[4];
        LoadAT<kBlock>(a, dss, warp * 16, kk * 16, lane);
#pragma unroll
        for (int dp = 0; dp < D / 16; ++dp) {
          uint32_t b[4];
          LoadBT<D>(b, ks, dp * 16, kk * 16, lane);
          Mma<T>(dq[2 * dp], a, b[0], b[1]);
          Mma<T>(dq[2 * dp + 1], a, b[2], b[3]);
        }
      }
      // Lane pairs swap halves so that each lane adds 4 consecutive columns
      // of one row with one 16-byte atomic: the even lane row lane/4, the odd
      // one row lane/4 + 8, columns dt * 8 + (lane & 2) * 2 ...
      const bool odd = lane & 1;
      const int q = q0 + warp * 16 + (lane >> 2) + (odd ? 8 : 0);
      float* dst = p.dq + (static_cast<int64_t>(row0) + q - p.first_row) * p.q_cols + static_cast<int64_t>(h) * D +
                   (lane & 2) * 2;
#pragma unroll
      for (int dt = 0; dt < D / 8; ++dt) {
        const float r0 = __shfl_xor_sync(0xffffffffu, odd ? dq[dt][0] : dq[dt][2], 1);
        const float r1 = __shfl_xor_sync(0xffffffffu, odd ? dq[dt][1] : dq[dt][3], 1);
        const float4 v = odd ? make_float4(r0 * p.scale, r1 * p.scale, dq[dt][2] * p.scale, dq[dt][3] * p.scale)
                             : make_float4(dq[dt][0] * p.scale, dq[dt][1] * p.scale, r0 * p.scale, r1 * p.scale);
        if (q < len) atomicAdd(reinterpret_cast<float4*>(dst + dt * 8), v);
      }
    }
    // No barrier here: the next iteration's loads go to the other stage, and
    // dS^T is rewritten only after its first barrier, which every warp
    // reaches after this dQ.
  }

  T* dqkv = static_cast<T*>(p.dst);
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    if (krow[i] >= len) continue;
    T* row = dqkv + (static_cast<int64_t>(row0) + krow[i]) * p.width + (lane & 3) * 2;
    uint32_t* kd = reinterpret_cast<uint32_t*>(row + kcol);
    uint32_t* vd = reinterpret_cast<uint32_t*>(row + vcol);
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt) {
      kd[dt * 4] = Pack<T>(dk[dt][2 * i] * p.scale, dk[dt][2 * i + 1] * p.scale);
      vd[dt * 4] = Pack<T>(dv[dt][2 * i], dv[dt][2 * i + 1]);
    }
  }
}

// dqkv[first_row + r, c] = dq[r, c] for c < q (two columns a thread).
template <typename T>
__global__ void StoreDqKernel(const __grid_constant__ Params p, int64_t pairs) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= pairs) return;
  const int64_t half = p.q_cols / 2, r = i / half, c = (i % half) * 2;
  const float2 v = *reinterpret_cast<const float2*>(p.dq + r * p.q_cols + c);
  *reinterpret_cast<uint32_t*>(static_cast<T*>(p.dst) + (p.first_row + r) * p.width + c) = Pack<T>(v.x, v.y);
}

// ---- host -------------------------------------------------------------------
constexpr size_t ForwardSmem(int d) { return size_t{5} * kBlock * d * 2; }
constexpr size_t BackwardSmem(int d) { return size_t{6} * kBlock * d * 2 + kBlock * kBlock * 2 + 4 * kBlock * 4; }

int64_t RoundUp256(int64_t x) { return (x + 255) / 256 * 256; }

Params MakeParams(const Tensor& qkv, const AttentionShape& s) {
  Params p{};
  p.qkv = qkv.raw();
  p.width = qkv.dim(1);
  p.q_cols = int64_t{s.num_heads} * s.head_dim;
  p.kv_cols = int64_t{s.num_kv_heads} * s.head_dim;
  p.heads = s.num_heads;
  p.group = s.num_heads / s.num_kv_heads;
  p.window = s.sliding_window;
  p.scale = s.scale;
  p.scale_log2 = s.scale * kLog2e;
  return p;
}

// Calls launch(params, max blocks of a sequence) for each run of up to
// kMaxSeqs sequences, params.seqs filled.
template <typename Launch>
Status ForEachSeqChunk(Params p, const std::vector<int>& seq_starts, Launch launch) {
  const int total = static_cast<int>(seq_starts.size()) - 1;
  for (int s0 = 0; s0 < total; s0 += kMaxSeqs) {
    const int n = std::min(kMaxSeqs, total - s0);
    p.seqs.count = n;
    int most = 0;
    for (int i = 0; i <= n; ++i) p.seqs.start[i] = seq_starts[s0 + i];
    for (int i = 0; i < n; ++i) most = std::max(most, p.seqs.start[i + 1] - p.seqs.start[i]);
    if (most == 0) continue;
    launch(p, (most + kBlock - 1) / kBlock);
    BATON_CUDA_CHECK(cudaGetLastError());
  }
  return Status::Ok();
}

template <typename T, int D>
Status Forward(Params p, const std::vector<int>& seq_starts, cudaStream_t stream) {
  constexpr size_t smem = ForwardSmem(D);
  BATON_CUDA_CHECK(cudaFuncSetAttribute(FlashForwardKernel<T, D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        static_cast<int>(smem)));
  return ForEachSeqChunk(p, seq_starts, [&](const Params& c, int blocks) {
    const dim3 grid(static_cast<unsigned>(c.heads), static_cast<unsigned>(c.seqs.count), static_cast<unsigned>(blocks));
    FlashForwardKernel<T, D><<<grid, kThreads, smem, stream>>>(c);
  });
}

template <typename T, int D>
Status Backward(Params p, const std::vector<int>& seq_starts, int kv_heads, cudaStream_t stream) {
  const int64_t rows = seq_starts.back() - seq_starts.front();
  BATON_CUDA_CHECK(cudaMemsetAsync(p.dq, 0, rows * p.q_cols * sizeof(float), stream));
  const int64_t pairs = rows * p.heads;
  RowDotKernel<T, D><<<static_cast<unsigned>((pairs * 32 + 255) / 256), 256, 0, stream>>>(p, pairs);
  BATON_CUDA_CHECK(cudaGetLastError());
  constexpr size_t smem = BackwardSmem(D);
  BATON_CUDA_CHECK(cudaFuncSetAttribute(FlashBackwardKernel<T, D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        static_cast<int>(smem)));
  BATON_RETURN_IF_ERROR(ForEachSeqChunk(p, seq_starts, [&](const Params& c, int blocks) {
    const dim3 grid(static_cast<unsigned>(kv_heads), static_cast<unsigned>(c.seqs.count),
                    static_cast<unsigned>(blocks));
    FlashBackwardKernel<T, D><<<grid, kThreads, smem, stream>>>(c);
  }));
  const int64_t dq_pairs = rows * p.q_cols / 2;
  StoreDqKernel<T><<<static_cast<unsigned>((dq_pairs + 255) / 256), 256, 0, stream>>>(p, dq_pairs);
  BATON_CUDA_CHECK(cudaGetLastError());
  return Status::Ok();
}

bool Aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

bool FlashAttentionSupported(DType dtype, const AttentionShape& shape) {
  return (dtype == DType::kBF16 || dtype == DType::kF16) && (shape.head_dim == 64 || shape.head_dim == 128) &&
         shape.scale > 0.0f && shape.num_heads > 0 && shape.num_kv_heads > 0 &&
         shape.num_heads % shape.num_kv_heads == 0;
}

bool FlashAttentionSupported(const Tensor& qkv, const AttentionShape& shape) {
  return FlashAttentionSupported(qkv.dtype(), shape) && qkv.ndim() == 2 && qkv.dim(1) % 8 == 0 && Aligned16(qkv.raw());
}

size_t FlashAttentionWorkspaceBytes(const std::vector<int>& seq_starts, const AttentionShape& shape) {
  if (seq_starts.size() < 2) return 0;
  const int64_t rows = seq_starts.back() - seq_starts.front();
  return static_cast<size_t>(RoundUp256(rows * shape.num_heads * shape.head_dim * 4) +
                             RoundUp256(rows * shape.num_heads * 4));
}

Status RunFlashAttentionForward(const Tensor& qkv, const std::vector<int>& seq_starts, const AttentionShape& shape,
                                Tensor& out, Tensor* lse, cudaStream_t stream) {
  Params p = MakeParams(qkv, shape);
  p.dst = out.raw();
  p.lse_out = lse != nullptr ? lse->data<float>() : nullptr;
  const bool bf16 = qkv.dtype() == DType::kBF16;
  if (shape.head_dim == 64) {
    return bf16 ? Forward<__nv_bfloat16, 64>(p, seq_starts, stream) : Forward<__half, 64>(p, seq_starts, stream);
  }
  return bf16 ? Forward<__nv_bfloat16, 128>(p, seq_starts, stream) : Forward<__half, 128>(p, seq_starts, stream);
}

Status RunFlashAttentionBackward(const Tensor& qkv, const Tensor& out, const Tensor& lse, const Tensor& dout,
                                 const std::vector<int>& seq_starts, const AttentionShape& shape, Tensor& dqkv,
                                 Tensor& workspace, cudaStream_t stream) {
  const size_t need = FlashAttentionWorkspaceBytes(seq_starts, shape);
  if (workspace.nbytes() < need) {
    return Status::InvalidArgument("RunCausalAttentionBackward: workspace has " + std::to_string(workspace.nbytes()) +
                                   " bytes, the fused kernels need " + std::to_string(need));
  }
  if (!Aligned16(out.raw()) || !Aligned16(dout.raw()) || !Aligned16(workspace.raw())) {
    return Status::InvalidArgument("RunCausalAttentionBackward: out, dout and workspace must be 16-byte aligned");
  }
  const int64_t rows = seq_starts.back() - seq_starts.front();
  Params p = MakeParams(qkv, shape);
  p.out = out.raw();
  p.dout = dout.raw();
  p.dst = dqkv.raw();
  p.lse = lse.data<float>();
  p.dq = static_cast<float*>(workspace.raw());
  p.dsum = reinterpret_cast<float*>(static_cast<char*>(workspace.raw()) + RoundUp256(rows * p.q_cols * 4));
  p.first_row = seq_starts.front();
  if (rows == 0) return Status::Ok();
  const bool bf16 = qkv.dtype() == DType::kBF16;
  const int kv = shape.num_kv_heads;
  if (shape.head_dim == 64) {
    return bf16 ? Backward<__nv_bfloat16, 64>(p, seq_starts, kv, stream)
                : Backward<__half, 64>(p, seq_starts, kv, stream);
  }
  return bf16 ? Backward<__nv_bfloat16, 128>(p, seq_starts, kv, stream)
              : Backward<__half, 128>(p, seq_starts, kv, stream);
}

}  // namespace baton::cuda
