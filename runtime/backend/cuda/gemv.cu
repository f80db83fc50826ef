#include "runtime/backend/cuda/chained_launch.cuh"
#include "runtime/backend/cuda/common.cuh"
#include "runtime/backend/cuda/gemv.cuh"
#include "runtime/backend/cuda/pack.cuh"

namespace baton::cuda {
namespace {

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
constexpr int W = 8;               // elements in a 16-byte pack
constexpr int kLoadsInFlight = 4;  // 16-byte weight loads a lane issues, over all its rows, before it uses them
constexpr int kMaxSplit = 4;       // warps sharing one output column

template <typename T>
struct GemvArgs {
  const T* x;
  const T* w;
  const T* bias;
  const T* rms_weight;
  T* y;
  int64_t n;  // output columns (kSwiGlu: F, the up rows start at w + n * k)
  int64_t k;
  float rms_eps;
};

// Weight rows a warp streams: its column's, and for SwiGLU also the up row.
__host__ __device__ constexpr int RowsFor(LinearEpilogue e) { return e == LinearEpilogue::kSwiGlu ? 2 : 1; }

// Loads a lane has in flight per row. The lane's total stays at
// kLoadsInFlight whatever the rows: with 4 a row, the SwiGLU kernel took 108
// registers, which left 4 blocks an SM; with 2, 72 registers and 7 blocks,
// and 1B decode ran 0.7 % faster (H100).
__host__ __device__ constexpr int InFlightFor(LinearEpilogue e) { return kLoadsInFlight / RowsFor(e); }

// One round: kIn packs of each weight row (already loaded), kStride
// packs apart, against the same packs of every row of x (from L1), and,
// when normed, the squares of x and its product with the norm weight.
template <typename T, int M, int R, int kIn, int kStride, bool kNorm, bool kChecked>
__device__ __forceinline__ void AccumulateRound(const GemvArgs<T>& a, int64_t p, int64_t packs,
                                                const Pack<T, W> (&wp)[R][kIn], float (&acc)[R][M],
                                                float (&squares)[M]) {
#pragma unroll
  for (int j = 0; j < kIn; ++j) {
    if (kChecked && p + kStride * j >= packs) break;
    const int64_t e = (p + kStride * j) * W;
    Pack<T, W> g;
    if constexpr (kNorm) g = LoadPack<W>(a.rms_weight + e);
#pragma unroll
    for (int m = 0; m < M; ++m) {
      const Pack<T, W> xp = LoadPack<W>(a.x + m * a.k + e);
#pragma unroll
      for (int u = 0; u < W; ++u) {
        float xv = ToF(xp.v[u]);
        if constexpr (kNorm) {
          squares[m] += xv * xv;
          xv *= ToF(g.v[u]);
        }
#pragma unroll
        for (int r = 0; r < R; ++r) acc[r][m] += ToF(wp[r][j].v[u]) * xv;
      }
    }
  }
}

template <typename T, int R, int kIn, int kStride>
__device__ __forceinline__ void LoadRound(const T* const (&wrow)[R], int64_t p, int64_t packs, Pack<T, W> (&wp)[R][kIn],
                                          bool checked) {
#pragma unroll
  for (int j = 0; j < kIn; ++j) {
    if (checked && p + kStride * j >= packs) continue;
#pragma unroll
    for (int r = 0; r < R; ++r) wp[r][j] = LoadPack<W>(wrow[r] + (p + kStride * j) * W);
  }
}

// kSplit warps per output column (a row of w, or a gate row and its up
// row): their lanes stride along K in 8-element packs, InFlightFor(E) packs a
// row per round (all requested before any is used), one fp32 partial a row
// of x; warp sums, then (kSplit > 1) a sum over the column's warps in
// shared memory, in warp order, finish them. Splitting a column keeps
// enough warps streaming when columns are few and long (the 1B shape's
// down projection: 2048 columns of 8192), where a warp each would leave
// each with eight dependent rounds. The first round is requested before
// WaitForPriorGrid, so under a chained launch it overlaps the kernel that
// produces x (no kernel writes weights). x (M x K, a few KB) stays in L1
// across the warps of an SM. The epilogue rounds each product to T before
// using it, as the separate ops (Linear, then SwiGlu or AddInPlace) do.
template <typename T, int M, int kSplit, bool kNorm, LinearEpilogue E>
__global__ void __launch_bounds__(kThreads) GemvKernel(const GemvArgs<T> a) {
  constexpr int R = RowsFor(E);
  constexpr int kIn = InFlightFor(E);
  constexpr int kStride = 32 * kSplit;  // packs between a lane's consecutive packs
  static_assert(kWarps % kSplit == 0, "a block holds whole columns");
  AllowNextGrid();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t col = static_cast<int64_t>(blockIdx.x) * (kWarps / kSplit) + warp / kSplit;
  const int64_t first = (warp % kSplit) * 32 + lane;  // this lane's first pack
  const int64_t packs = a.k / W;
  const int64_t safe_col = col < a.n ? col : 0;  // past the end: computed, never stored
  const T* wrow[R];
#pragma unroll
  for (int r = 0; r < R; ++r) wrow[r] = a.w + (safe_col + r * a.n) * a.k;
  Pack<T, W> wp[R][kIn];
  LoadRound<T, R, kIn, kStride>(wrow, first, packs, wp, /*checked=*/true);
  WaitForPriorGrid();
  float acc[R][M] = {};
  float squares[M] = {};
  AccumulateRound<T, M, R, kIn, kStride, kNorm, true>(a, first, packs, wp, acc, squares);
  for (int64_t p = first + kStride * kIn; p < packs; p += kStride * kIn) {
    if (p + kStride * (kIn - 1) < packs) {
      LoadRound<T, R, kIn, kStride>(wrow, p, packs, wp, /*checked=*/false);
      AccumulateRound<T, M, R, kIn, kStride, kNorm, false>(a, p, packs, wp, acc, squares);
    } else {
      LoadRound<T, R, kIn, kStride>(wrow, p, packs, wp, /*checked=*/true);
      AccumulateRound<T, M, R, kIn, kStride, kNorm, true>(a, p, packs, wp, acc, squares);
    }
  }
#pragma unroll
  for (int m = 0; m < M; ++m) {
#pragma unroll
    for (int r = 0; r < R; ++r) acc[r][m] = WarpSum(acc[r][m]);
    if constexpr (kNorm) squares[m] = WarpSum(squares[m]);
  }
  if constexpr (kSplit > 1) {
    __shared__ float partial[kWarps][(R + 1) * M];
    if (lane == 0) {
#pragma unroll
      for (int m = 0; m < M; ++m) {
#pragma unroll
        for (int r = 0; r < R; ++r) partial[warp][r * M + m] = acc[r][m];
        partial[warp][R * M + m] = squares[m];
      }
    }
    __syncthreads();
    if (warp % kSplit != 0) return;
#pragma unroll
    for (int s = 1; s < kSplit; ++s) {
#pragma unroll
      for (int m = 0; m < M; ++m) {
#pragma unroll
        for (int r = 0; r < R; ++r) acc[r][m] += partial[warp + s][r * M + m];
        squares[m] += partial[warp + s][R * M + m];
      }
    }
  }
  if (lane != 0 || col >= a.n) return;
  float bias[R];
#pragma unroll
  for (int r = 0; r < R; ++r) bias[r] = a.bias != nullptr ? ToF(a.bias[col + r * a.n]) : 0.0f;
#pragma unroll
  for (int m = 0; m < M; ++m) {
    const float scale = kNorm ? rsqrtf(squares[m] / static_cast<float>(a.k) + a.rms_eps) : 1.0f;
    const float z = ToF(FromF<T>(acc[0][m] * scale + bias[0]));
    T* out = a.y + m * a.n + col;
    if constexpr (E == LinearEpilogue::kStore) {
      *out = FromF<T>(z);
    } else if constexpr (E == LinearEpilogue::kAccumulate) {
      *out = FromF<T>(ToF(*out) + z);
    } else {
      const float up = ToF(FromF<T>(acc[R - 1][m] * scale + bias[R - 1]));
      *out = FromF<T>((z / (1.0f + expf(-z))) * up);
    }
  }
}

// Warps per column: split while the columns alone would give fewer than
// kSplitBelowWarps warps (~30 an SM) and each warp keeps at least a full
// round. Measured on the H100 (1B batch-1 decode, tok/s, runs of one call):
// 2048 (no split on that shape) 832 / 838, 3072 863 / 876, 4096 859 / 870,
// 8192 852 / 845, 16384 819 / 803; the 8B shape within 1 % across them.
constexpr int64_t kSplitBelowWarps = 4096;
int SplitFor(int64_t n, int64_t k, int in_flight) {
  int split = 1;
  while (split < kMaxSplit && n * split < kSplitBelowWarps && k / (W * 32 * 2 * split) >= in_flight) split *= 2;
  return split;
}

// Blocks of the GEMV's grid for n columns, `split` warps a column.
int64_t GridBlocks(int64_t n, int split) {
  const int64_t columns_per_block = kWarps / split;
  return (n + columns_per_block - 1) / columns_per_block;
}

// Blocks of `kernel` the current GPU holds at once (one wave); 0 when CUDA
// cannot say.
template <typename Kernel>
int64_t WaveBlocks(Kernel kernel) {
  int per_sm = 0;
  if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreads, 0) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return static_cast<int64_t>(CurrentDeviceAttribute(cudaDevAttrMultiProcessorCount)) * per_sm;
}

// Splits for products of one or two rows (decode at small batches), where
// latency decides; more rows keep a warp per column (fewer kernels to build).
// A split never takes the grid past one wave: every block of a second wave
// starts after the wait, when there is nothing left to overlap its first
// loads with. On the 1B shape's qkv projection (3072 columns), 1536 blocks
// of two warps a column on 1188 slots were 1.0 % slower over the decode than
// 768 blocks of one (H100).
template <typename T, int M, bool kNorm, LinearEpilogue E>
void LaunchKernel(const GemvArgs<T>& args, cudaStream_t stream) {
  int split = M <= 2 ? SplitFor(args.n, args.k, InFlightFor(E)) : 1;
  static const int64_t wave = WaveBlocks(GemvKernel<T, M, 1, kNorm, E>);
  while (split > 1 && wave > 0 && GridBlocks(args.n, split) > wave) split /= 2;
  const dim3 grid(static_cast<unsigned>(GridBlocks(args.n, split)));
  if constexpr (M <= 2) {
    if (split == 4) {
      return LaunchChained("Linear (gemv)", GemvKernel<T, M, 4, kNorm, E>, grid, dim3(kThreads), 0, stream, args);
    }
    if (split == 2) {
      return LaunchChained("Linear (gemv)", GemvKernel<T, M, 2, kNorm, E>, grid, dim3(kThreads), 0, stream, args);
    }
  }
  { LaunchChained("Linear (gemv)", GemvKernel<T, M, 1, kNorm, E>, grid, dim3(kThreads), 0, stream, args); }
}

template <typename T, bool kNorm, LinearEpilogue E>
void LaunchRows(int64_t m, const GemvArgs<T>& args, cudaStream_t stream) {
  switch (m) {
    case 1:
      return LaunchKernel<T, 1, kNorm, E>(args, stream);
    case 2:
      return LaunchKernel<T, 2, kNorm, E>(args, stream);
    case 3:
      return LaunchKernel<T, 3, kNorm, E>(args, stream);
    default:
      return LaunchKernel<T, 4, kNorm, E>(args, stream);
  }
}

template <typename T, bool kNorm>
void LaunchEpilogue(int64_t m, LinearEpilogue e, const GemvArgs<T>& args, cudaStream_t stream) {
  switch (e) {
    case LinearEpilogue::kStore:
      return LaunchRows<T, kNorm, LinearEpilogue::kStore>(m, args, stream);
    case LinearEpilogue::kSwiGlu:
      return LaunchRows<T, kNorm, LinearEpilogue::kSwiGlu>(m, args, stream);
    case LinearEpilogue::kAccumulate:
      return LaunchRows<T, kNorm, LinearEpilogue::kAccumulate>(m, args, stream);
  }
}

template <typename T>
void LaunchTyped(const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& y, const GemvFusion& f,
                 cudaStream_t stream) {
  GemvArgs<T> args;
  args.x = static_cast<const T*>(x.raw());
  args.w = static_cast<const T*>(w.raw());
  args.bias = bias.defined() && bias.numel() > 0 ? static_cast<const T*>(bias.raw()) : nullptr;
  args.rms_weight = f.rms_weight != nullptr ? static_cast<const T*>(f.rms_weight->raw()) : nullptr;
  args.y = static_cast<T*>(y.raw());
  args.n = y.dim(1);
  args.k = x.dim(1);
  args.rms_eps = f.rms_eps;
  if (args.rms_weight != nullptr) {
    LaunchEpilogue<T, true>(x.dim(0), f.epilogue, args, stream);
  } else {
    LaunchEpilogue<T, false>(x.dim(0), f.epilogue, args, stream);
  }
}

// The shapes of a fused product (a plain one is RunLinear's to check).
void CheckFused(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& y, const GemvFusion& f) {
  const int64_t m = x.dim(0), k = x.dim(1);
  const int64_t n = f.epilogue == LinearEpilogue::kSwiGlu ? w.dim(0) / 2 : w.dim(0);
  Require(w.ndim() == 2 && w.dim(1) == k, "FusedLinear", "w must be [out, in] with in == x's columns");
  Require(f.epilogue != LinearEpilogue::kSwiGlu || w.dim(0) % 2 == 0, "FusedLinear",
          "a SwiGLU product needs [2F, K] weights");
  Require(y.ndim() == 2 && y.dim(0) == m && y.dim(1) == n, "FusedLinear",
          "out must be [rows of x, rows of w (kSwiGlu: half of them)]");
  Require(w.dtype() == x.dtype() && y.dtype() == x.dtype(), "FusedLinear", "x, w and out must share a dtype");
  Require(!bias.defined() || bias.numel() == 0 || (bias.numel() == w.dim(0) && bias.dtype() == x.dtype()),
          "FusedLinear", "bias must be [rows of w] of x's dtype");
  Require(f.rms_weight == nullptr || (f.rms_weight->numel() == k && f.rms_weight->dtype() == x.dtype() &&
                                      reinterpret_cast<uintptr_t>(f.rms_weight->raw()) % 16 == 0),
          "FusedLinear", "the norm weight must be [in] of x's dtype, 16-byte aligned");
}

}  // namespace

bool GemvApplies(const Tensor& x, const Tensor& w) {
  const int64_t m = x.dim(0), k = x.dim(1);
  if (m < 1 || m > kGemvMaxRows || w.dim(0) >= (1LL << 31)) return false;
  if (x.dtype() != DType::kBF16 && x.dtype() != DType::kF16) return false;
  return k % 8 == 0 && reinterpret_cast<uintptr_t>(x.raw()) % 16 == 0 && reinterpret_cast<uintptr_t>(w.raw()) % 16 == 0;
}

void LaunchGemv(const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& y, cudaStream_t stream,
                const GemvFusion& fusion) {
  Require(GemvApplies(x, w), "Linear", "LaunchGemv called outside GemvApplies");
  const bool fused = fusion.rms_weight != nullptr || fusion.epilogue != LinearEpilogue::kStore;
  if (fused) CheckFused(x, w, bias, y, fusion);
  if (y.dim(1) == 0) return;
  if (x.dtype() == DType::kBF16) {
    LaunchTyped<__nv_bfloat16>(x, w, bias, y, fusion, stream);
  } else {
    LaunchTyped<__half>(x, w, bias, y, fusion, stream);
  }
  CheckLaunch("Linear (gemv)");
}

}  // namespace baton::cuda
