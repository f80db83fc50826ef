#include <algorithm>
#include <string>

#include "runtime/backend/cuda/common.cuh"
#include "runtime/backend/cuda/cuda_check.h"
#include "runtime/backend/cuda/training/causal_attention_train.cuh"
#include "runtime/backend/cuda/training/flash_attention_train.cuh"

namespace baton::cuda {
namespace {

// Query rows per block of the tiled GEMMs. A block's GEMMs span the keys
// from its first row's window start to its last row, so blocks of B rows
// over L tokens compute (L/B + 1) / (2 L/B) of the square: 62.5 % at
// L = 2048 (the ideal is 50 %). On an H200 at L = 2048, blocks of 256 and
// 128 rows were 5 % and 25 % slower overall (smaller GEMMs).
constexpr int kQueryBlock = 512;

// Which keys a query row sees, and which key columns its query block's
// GEMMs cover (the row kernels zero the covered columns it does not see).
struct Mask {
  int len;
  int window;  // 0: the whole causal prefix
  int block;   // query rows per block
  __host__ __device__ int FirstKey(int i) const { return window > 0 && i - window + 1 > 0 ? i - window + 1 : 0; }
  __host__ __device__ int BlockBegin(int i) const { return i / block * block; }
  __host__ __device__ int BlockEnd(int i) const { return BlockBegin(i) + block < len ? BlockBegin(i) + block : len; }
  __host__ __device__ int BlockFirstKey(int i) const { return FirstKey(BlockBegin(i)); }
};

// What the row kernels of one (sequence, chunk) need. A chunk holds query
// rows [c0, c1) of kv groups [g0, g0 + gn); group slot s holds, for every
// query row i and member j of the group, row (i - c0) * G + j of float32
// scores (`scores`) and, in backward, score gradients (`grads`), ld floats
// a row (16-byte aligned). A row kernel overwrites the front of each row it
// owns with the row in the compute dtype, so the GEMMs read probabilities
// at ld * 4 / sizeof(T) elements a row.
struct RowParams {
  float* scores;
  float* grads;
  int64_t slot_floats;  // floats between group slots
  int ld;
  Mask mask;
  int c0, g0, group, num_heads, head_dim;
  int64_t row0;         // the sequence's first row of qkv / out / lse
  int64_t q_cols;       // row width of out / dout
  float* lse_out;       // forward: [N, heads]
  const float* lse_in;  // backward: the forward's
  const void* out;      // backward only: [N, q]
  const void* dout;
};

// Four values of T stored with one 8- or 16-byte access.
template <typename T>
struct alignas(4 * sizeof(T)) Vec4 {
  T v[4];
};

// Columns k .. k+3 of v, with those outside [lo, hi] replaced (not
// computed with: they may hold anything) by -inf.
__device__ __forceinline__ float4 MaskChunk(float4 v, int k, int lo, int hi) {
  v.x = k >= lo && k <= hi ? v.x : -INFINITY;
  v.y = k + 1 >= lo && k + 1 <= hi ? v.y : -INFINITY;
  v.z = k + 2 >= lo && k + 2 <= hi ? v.z : -INFINITY;
  v.w = k + 3 >= lo && k + 3 <= hi ? v.w : -INFINITY;
  return v;
}

__device__ __forceinline__ float Max4(float4 v) { return fmaxf(fmaxf(v.x, v.y), fmaxf(v.z, v.w)); }

// One warp per storage row. Query row i's visible columns [lo, i] are read
// as the 16-byte chunks covering them, from a0 = lo rounded down to 4 (rows
// are 16-byte aligned and ld a multiple of 8, so the last chunk ends inside
// the row): n4 chunks, chunk c (relative) holding columns a0 + 4c ...
// Chunks are handled in segments of kSeg per lane, all loads of a segment in
// flight at once. Outputs go to the block's columns [k0, k1) in chunks of 4
// (from k0 rounded down: the extra columns are the row's own and no GEMM
// reads them).
//
// Outputs (T) overwrite the front of the rows they come from: output chunk
// a (absolute) lies over input chunk a * sizeof(T) / 4 <= a. So a segment's
// outputs are written after __syncwarp (every lane has loaded the segment),
// never clobber a later segment, and the zero chunks after the visible ones
// (which lie over visible inputs) are written last.
struct RowSpan {
  int i, lo, a0, n4, first, end;  // first / end: the output chunks (absolute)
  __device__ RowSpan(const Mask& m, int row) : i(row), lo(m.FirstKey(row)) {
    a0 = lo & ~3;
    n4 = ((i - a0) >> 2) + 1;
    first = m.BlockFirstKey(row) >> 2;
    end = (m.BlockEnd(row) + 3) >> 2;
  }
};

constexpr int kRowsPerBlock = 8;  // warps (rows) per block

template <int kSeg>
__device__ __forceinline__ void LoadSegment(const float4* src, int seg, int n4, int lane, float4 (&v)[kSeg]) {
#pragma unroll
  for (int u = 0; u < kSeg; ++u) {
    const int c = seg * 32 * kSeg + u * 32 + lane;
    if (c < n4) v[u] = src[c];
  }
}

template <typename T>
__device__ __forceinline__ void StoreZeros(Vec4<T>* dst, int begin, int end, int lane) {
  Vec4<T> z;
#pragma unroll
  for (int e = 0; e < 4; ++e) z.v[e] = FromF<T>(0.0f);
  for (int c = begin + lane; c < end; c += 32) dst[c] = z;
}

// Forward: softmax of query row i's visible scores (already scaled by the
// GEMM) with an online max/sum per lane, lse = max + log(sum), then the
// probabilities, zero where masked. Rows of one segment stay in registers;
// longer rows are read again for the second pass (from L2, just read).
template <typename T, int kSeg>
__global__ void __launch_bounds__(32 * kRowsPerBlock) SoftmaxRowsKernel(RowParams p, int rows) {
  const int lane = threadIdx.x & 31, t = blockIdx.x * kRowsPerBlock + (threadIdx.x >> 5), slot = blockIdx.y;
  if (t >= rows) return;  // the whole warp
  const RowSpan r(p.mask, p.c0 + t / p.group);
  const int h = (p.g0 + slot) * p.group + t % p.group;
  float* srow = p.scores + slot * p.slot_floats + static_cast<int64_t>(t) * p.ld;
  const float4* src = reinterpret_cast<const float4*>(srow + r.a0);
  const int segs = (r.n4 + 32 * kSeg - 1) / (32 * kSeg);
  float4 v[kSeg];
  float m = -INFINITY, sum = 0.0f;
  for (int seg = 0; seg < segs; ++seg) {
    LoadSegment<kSeg>(src, seg, r.n4, lane, v);
    float seg_max = -INFINITY;
#pragma unroll
    for (int u = 0; u < kSeg; ++u) {
      const int c = seg * 32 * kSeg + u * 32 + lane;
      v[u] =
          c < r.n4 ? MaskChunk(v[u], r.a0 + 4 * c, r.lo, r.i) : make_float4(-INFINITY, -INFINITY, -INFINITY, -INFINITY);
      seg_max = fmaxf(seg_max, Max4(v[u]));
    }
    if (seg_max == -INFINITY) continue;  // nothing visible for this lane yet
    const float nm = fmaxf(m, seg_max);
    float s = 0.0f;
#pragma unroll
    for (int u = 0; u < kSeg; ++u) s += expf(v[u].x - nm) + expf(v[u].y - nm) + expf(v[u].z - nm) + expf(v[u].w - nm);
    sum = sum * expf(m - nm) + s;  // exp(-inf) = 0 on the first visible segment
    m = nm;
  }
  const float row_max = WarpMax(m);  // finite: column i is always visible
  const float lse = row_max + logf(WarpSum(m == -INFINITY ? 0.0f : sum * expf(m - row_max)));
  if (lane == 0) p.lse_out[(p.row0 + r.i) * p.num_heads + h] = lse;
  Vec4<T>* dst = reinterpret_cast<Vec4<T>*>(srow);
  const int a0c = r.a0 >> 2;
  StoreZeros(dst, r.first, a0c, lane);  // lies over columns before lo only
  for (int seg = 0; seg < segs; ++seg) {
    if (segs > 1) {
      LoadSegment<kSeg>(src, seg, r.n4, lane, v);
#pragma unroll
      for (int u = 0; u < kSeg; ++u) {
        const int c = seg * 32 * kSeg + u * 32 + lane;
        if (c < r.n4) v[u] = MaskChunk(v[u], r.a0 + 4 * c, r.lo, r.i);
      }
    }
    __syncwarp();  // every lane has read this segment before it is overwritten
#pragma unroll
    for (int u = 0; u < kSeg; ++u) {
      const int c = seg * 32 * kSeg + u * 32 + lane;
      if (c < r.n4) {
        Vec4<T> o;
        o.v[0] = FromF<T>(expf(v[u].x - lse));
        o.v[1] = FromF<T>(expf(v[u].y - lse));
        o.v[2] = FromF<T>(expf(v[u].z - lse));
        o.v[3] = FromF<T>(expf(v[u].w - lse));
        dst[a0c + c] = o;
      }
    }
  }
  __syncwarp();
  StoreZeros(dst, a0c + r.n4, r.end, lane);
}

// Backward, elementwise once D is known: P = exp(S - lse) from the
// recomputed scores, D = dO_i . O_i, dS = P * (dP - D) (the scale is the
// dQ/dK GEMMs' alpha). P overwrites the front of the score row and dS the
// front of the dP row, both in T, zero where masked.
template <typename T>
__global__ void __launch_bounds__(32 * kRowsPerBlock) SoftmaxGradRowsKernel(RowParams p, int rows) {
  constexpr int kSeg = 4;
  const int lane = threadIdx.x & 31, t = blockIdx.x * kRowsPerBlock + (threadIdx.x >> 5), slot = blockIdx.y;
  if (t >= rows) return;  // the whole warp
  const RowSpan r(p.mask, p.c0 + t / p.group);
  const int h = (p.g0 + slot) * p.group + t % p.group;
  const int64_t offset = slot * p.slot_floats + static_cast<int64_t>(t) * p.ld;
  float* srow = p.scores + offset;
  float* grow = p.grads + offset;
  const int64_t row = p.row0 + r.i;
  const T* o = static_cast<const T*>(p.out) + row * p.q_cols + static_cast<int64_t>(h) * p.head_dim;
  const T* g = static_cast<const T*>(p.dout) + row * p.q_cols + static_cast<int64_t>(h) * p.head_dim;
  float dot = 0.0f;
  for (int c = lane; c < p.head_dim; c += 32) dot += ToF(o[c]) * ToF(g[c]);
  const float d = WarpSum(dot);
  const float lse = p.lse_in[row * p.num_heads + h];
  const float4* s_src = reinterpret_cast<const float4*>(srow + r.a0);
  const float4* g_src = reinterpret_cast<const float4*>(grow + r.a0);
  Vec4<T>* p_dst = reinterpret_cast<Vec4<T>*>(srow);
  Vec4<T>* ds_dst = reinterpret_cast<Vec4<T>*>(grow);
  const int a0c = r.a0 >> 2;
  StoreZeros(p_dst, r.first, a0c, lane);
  StoreZeros(ds_dst, r.first, a0c, lane);
  const int segs = (r.n4 + 32 * kSeg - 1) / (32 * kSeg);
  for (int seg = 0; seg < segs; ++seg) {
    float4 sv[kSeg], gv[kSeg];
    LoadSegment<kSeg>(s_src, seg, r.n4, lane, sv);
    LoadSegment<kSeg>(g_src, seg, r.n4, lane, gv);
    __syncwarp();  // every lane has read this segment of both rows before they are overwritten
#pragma unroll
    for (int u = 0; u < kSeg; ++u) {
      const int c = seg * 32 * kSeg + u * 32 + lane;
      if (c >= r.n4) continue;
      const float s4[4] = {sv[u].x, sv[u].y, sv[u].z, sv[u].w}, g4[4] = {gv[u].x, gv[u].y, gv[u].z, gv[u].w};
      Vec4<T> pv, dsv;
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int k = r.a0 + 4 * c + e;
        float pk = 0.0f, ds = 0.0f;
        if (k >= r.lo && k <= r.i) {  // masked inputs may be anything (NaN): never used
          pk = expf(s4[e] - lse);
          ds = pk * (g4[e] - d);
        }
        pv.v[e] = FromF<T>(pk);
        dsv.v[e] = FromF<T>(ds);
      }
      p_dst[a0c + c] = pv;
      ds_dst[a0c + c] = dsv;
    }
  }
  __syncwarp();
  StoreZeros(p_dst, a0c + r.n4, r.end, lane);
  StoreZeros(ds_dst, a0c + r.n4, r.end, lane);
}

// Between a row-major [rows, ld] tensor whose row holds `groups` runs of
// `chunk` units (one kv group's query heads) and a group-major copy
// [groups, rows, chunk], in which the G heads of a group form one matrix of
// rows * G rows of head_dim (what lets one GEMM cover a whole group).
template <typename U, bool kGather>
__global__ void RegroupKernel(const U* src, U* dst, int rows, int chunk, int64_t ld) {
  const int i = blockIdx.x, g = blockIdx.y;
  const int64_t grouped = (static_cast<int64_t>(g) * rows + i) * chunk;
  const int64_t strided = static_cast<int64_t>(i) * ld + static_cast<int64_t>(g) * chunk;
  for (int x = threadIdx.x; x < chunk; x += blockDim.x) {
    if constexpr (kGather) {
      dst[grouped + x] = src[strided + x];
    } else {
      dst[strided + x] = src[grouped + x];
    }
  }
}

// dK, dV of one sequence from their float32 accumulators ([L, kv] each,
// back to back) into dqkv's columns [q, q + 2 kv).
template <typename T>
__global__ void StoreKvGradKernel(const float* acc, T* dqkv, int rows, int kv_cols, int64_t width, int64_t q_cols) {
  const int r = blockIdx.x;
  const float* dk = acc + static_cast<int64_t>(r) * kv_cols;
  const float* dv = acc + (static_cast<int64_t>(rows) + r) * kv_cols;
  T* dst = dqkv + r * width + q_cols;
  for (int c = threadIdx.x; c < kv_cols; c += blockDim.x) {
    dst[c] = FromF<T>(dk[c]);
    dst[kv_cols + c] = FromF<T>(dv[c]);
  }
}

int64_t RoundUp(int64_t v, int64_t to) { return (v + to - 1) / to * to; }

// Geometry of the qkv rows and heads.
struct Layout {
  int heads, kv_heads, d, group;
  int64_t width, q_cols, kv_cols, elem;
  cudaDataType_t type;
  int64_t KCol(int g) const { return q_cols + int64_t{g} * d; }
  int64_t VCol(int g) const { return q_cols + kv_cols + int64_t{g} * d; }
};

Layout MakeLayout(const Tensor& qkv, const AttentionShape& s) {
  Layout l;
  l.heads = s.num_heads;
  l.kv_heads = s.num_kv_heads;
  l.d = s.head_dim;
  l.group = s.num_heads / s.num_kv_heads;
  l.width = qkv.dim(1);
  l.q_cols = int64_t{s.num_heads} * s.head_dim;
  l.kv_cols = int64_t{s.num_kv_heads} * s.head_dim;
  l.elem = static_cast<int64_t>(DTypeBytes(qkv.dtype(), 1));
  l.type = CudaDataType(qkv.dtype(), "CausalAttention");
  return l;
}

// Workspace sizes of one sequence (see CausalAttentionWorkspaceBytes).
struct Plan {
  int len, blocks, block_rows;  // query blocks of block_rows = min(kQueryBlock, len) rows
  int64_t ld;                   // floats per score row
  int64_t copy_bytes;           // one group-major [L, q] copy in T
  int64_t acc_bytes;            // dK + dV float32 accumulators
  int64_t unit_bytes;           // float32 scores of one query block of one kv group
  int64_t max_visible;          // most keys a query row sees
};

Plan PlanFor(int len, const AttentionShape& s, int64_t elem) {
  Plan p;
  p.len = len;
  p.block_rows = std::min(kQueryBlock, len);
  p.blocks = (len + kQueryBlock - 1) / kQueryBlock;
  p.ld = RoundUp(len, 8);
  p.copy_bytes = RoundUp(int64_t{len} * s.num_heads * s.head_dim * elem, 256);
  p.acc_bytes = RoundUp(2 * int64_t{len} * s.num_kv_heads * s.head_dim * 4, 256);
  p.unit_bytes = int64_t{p.block_rows} * (s.num_heads / s.num_kv_heads) * p.ld * 4;
  p.max_visible = s.sliding_window > 0 ? std::min(len, s.sliding_window) : len;
  return p;
}

// A chunk is `bstep` query blocks of `gstep` kv groups: all groups of as
// many blocks as fit (bigger batches), else one block of as many groups.
struct Chunking {
  int bstep, gstep;
  int64_t slot_floats;  // one group's scores over bstep blocks
};

Chunking ChunkingFor(int64_t units, const Plan& p, const Layout& l) {
  Chunking c;
  if (units >= l.kv_heads) {
    c.bstep = static_cast<int>(std::min<int64_t>(p.blocks, units / l.kv_heads));
    c.gstep = l.kv_heads;
  } else {
    c.bstep = 1;
    c.gstep = static_cast<int>(units);
  }
  c.slot_floats = int64_t{c.bstep} * p.block_rows * l.group * p.ld;
  return c;
}

// A GEMM operand: base pointer, leading dimension and batch stride, in
// elements of its type.
struct Operand {
  const void* ptr;
  int64_t ld, stride;
  cudaDataType_t type;
};

// Column-major C[m, n] (batch) = alpha op(A) op(B) + beta C, fp32 accumulation.
Status Gemm(cublasHandle_t handle, cublasOperation_t ta, cublasOperation_t tb, int64_t m, int64_t n, int64_t k,
            float alpha, const Operand& a, const Operand& b, float beta, void* c, cudaDataType_t c_type, int64_t ldc,
            int64_t stride_c, int batch) {
  const cublasStatus_t st = cublasGemmStridedBatchedEx(
      handle, ta, tb, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), &alpha, a.ptr, a.type,
      static_cast<int>(a.ld), a.stride, b.ptr, b.type, static_cast<int>(b.ld), b.stride, &beta, c, c_type,
      static_cast<int>(ldc), stride_c, batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  if (st == CUBLAS_STATUS_SUCCESS) return Status::Ok();
  return Status::Internal(std::string("CausalAttention: cublasGemmStridedBatchedEx failed: ") +
                          cublasGetStatusName(st) + " for m=" + std::to_string(m) + " n=" + std::to_string(n) +
                          " k=" + std::to_string(k) + " batch=" + std::to_string(batch));
}

const char* At(const void* base, int64_t elements, int64_t elem) {
  return static_cast<const char*>(base) + elements * elem;
}
char* At(void* base, int64_t elements, int64_t elem) { return static_cast<char*>(base) + elements * elem; }

// The rows of one chunk and query block, as the GEMMs address them. The
// group-major copies (Q, dO, and the O / dQ results) hold group g's row
// (i, j) at ((g * L + i) * G + j) * d; the score slots hold it at row
// (i - c0) * G + j.
struct BlockView {
  const Layout& l;
  const Plan& p;
  const Chunking& ch;
  Mask mask;
  int c0, g0, gn, r0;
  int r1() const { return mask.BlockEnd(r0); }
  int k0() const { return mask.BlockFirstKey(r0); }
  int64_t nq() const { return int64_t{r1() - r0} * l.group; }  // storage rows of the block
  int64_t nk() const { return r1() - k0(); }
  int64_t group_stride() const { return int64_t{p.len} * l.group * l.d; }
  int64_t GroupRow() const { return (int64_t{g0} * p.len + r0) * l.group * l.d; }  // in a group-major copy
  Operand Grouped(const void* copy) const { return {At(copy, GroupRow(), l.elem), l.d, group_stride(), l.type}; }
  // K or V rows [k0, r1) of kv heads g0.. (stride d) in qkv.
  Operand Keys(const void* qkv, int64_t col) const {
    return {At(qkv, int64_t{k0()} * l.width + col, l.elem), l.width, l.d, l.type};
  }
  float* Scores(float* slots) const { return slots + int64_t{r0 - c0} * l.group * p.ld + k0(); }
  // The same rows read back in T (the row kernels' output).
  Operand Probs(const float* slots) const {
    const int64_t ldp = p.ld * 4 / l.elem;
    const char* base = reinterpret_cast<const char*>(slots) + (int64_t{r0 - c0} * l.group * ldp + k0()) * l.elem;
    return {base, ldp, ch.slot_floats * 4 / l.elem, l.type};
  }
};

// S = alpha K Q^T for a block: column-major [nk, nq] = K[k0:r1] . Qg^T,
// batched over the chunk's groups (K stride d in qkv, Qg stride L G d).
// With dO and V it is dP = dO V^T.
Status ScoresGemm(cublasHandle_t handle, const BlockView& b, const Operand& keys, const void* grouped, float alpha,
                  float* slots) {
  return Gemm(handle, CUBLAS_OP_T, CUBLAS_OP_N, b.nk(), b.nq(), b.l.d, alpha, keys, b.Grouped(grouped), 0.0f,
              b.Scores(slots), CUDA_R_32F, b.p.ld, b.ch.slot_floats, b.gn);
}

// X = alpha P V for a block (or dQ = scale dS K): column-major [d, nq] =
// V^T [d, nk] . P^T [nk, nq], into the group-major copy `dst` (T).
Status ProbsTimesKeys(cublasHandle_t handle, const BlockView& b, const Operand& values, const float* probs, float alpha,
                      void* dst) {
  return Gemm(handle, CUBLAS_OP_N, CUBLAS_OP_N, b.l.d, b.nq(), b.nk(), alpha, values, b.Probs(probs), 0.0f,
              At(dst, b.GroupRow(), b.l.elem), b.l.type, b.l.d, b.group_stride(), b.gn);
}

// dK += scale dS^T Q (or dV += P^T dO) for a block, summed over the
// group's heads by the GEMM itself: column-major [d, nk] += Qg^T [d, nq] .
// dS [nq, nk], into the float32 accumulator `acc` [L, kv].
Status ProbsTransposedTimesRows(cublasHandle_t handle, const BlockView& b, const void* grouped, const float* probs,
                                float alpha, float* acc) {
  return Gemm(handle, CUBLAS_OP_N, CUBLAS_OP_T, b.l.d, b.nk(), b.nq(), alpha, b.Grouped(grouped), b.Probs(probs), 1.0f,
              acc + int64_t{b.k0()} * b.l.kv_cols + int64_t{b.g0} * b.l.d, CUDA_R_32F, b.l.kv_cols, b.l.d, b.gn);
}

// Gathers rows [0, rows) of a [rows, ld] tensor's first `groups` chunks
// into a group-major copy (gather), or scatters one back.
template <typename U>
void LaunchRegroup(const void* src, void* dst, int64_t rows, int64_t groups, int64_t chunk, int64_t ld, bool gather,
                   cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(rows), static_cast<unsigned>(groups));
  const int threads = static_cast<int>(std::min<int64_t>(256, RoundUp(chunk, 32)));
  if (gather) {
    RegroupKernel<U, true><<<grid, threads, 0, stream>>>(static_cast<const U*>(src), static_cast<U*>(dst),
                                                         static_cast<int>(rows), static_cast<int>(chunk), ld);
  } else {
    RegroupKernel<U, false><<<grid, threads, 0, stream>>>(static_cast<const U*>(src), static_cast<U*>(dst),
                                                          static_cast<int>(rows), static_cast<int>(chunk), ld);
  }
}

Status Regroup(const void* src, void* dst, int64_t rows, int64_t groups, int64_t chunk, int64_t ld, int64_t elem,
               bool gather, cudaStream_t stream) {
  const auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  if (chunk * elem % 16 == 0 && ld * elem % 16 == 0 && aligned(src) && aligned(dst)) {
    LaunchRegroup<uint4>(src, dst, rows, groups, chunk * elem / 16, ld * elem / 16, gather, stream);
  } else if (elem == 2) {
    LaunchRegroup<uint16_t>(src, dst, rows, groups, chunk, ld, gather, stream);
  } else {
    LaunchRegroup<uint32_t>(src, dst, rows, groups, chunk, ld, gather, stream);
  }
  BATON_CUDA_CHECK(cudaGetLastError());
  return Status::Ok();
}

Status Invalid(const char* op, const std::string& what) {
  return Status::InvalidArgument(std::string(op) + ": " + what);
}

Status CheckCommon(const char* op, const Tensor& qkv, const std::vector<int>& seq_starts, const AttentionShape& s) {
  if (s.num_heads <= 0 || s.num_kv_heads <= 0 || s.head_dim <= 0) {
    return Invalid(op, "shape.num_heads (" + std::to_string(s.num_heads) + "), num_kv_heads (" +
                           std::to_string(s.num_kv_heads) + ") and head_dim (" + std::to_string(s.head_dim) +
                           ") must be positive");
  }
  if (s.num_heads % s.num_kv_heads != 0) {
    return Invalid(op, "shape.num_heads (" + std::to_string(s.num_heads) + ") is not a multiple of num_kv_heads (" +
                           std::to_string(s.num_kv_heads) + ")");
  }
  if (s.num_kv_heads > 65535) return Invalid(op, "shape.num_kv_heads is above 65535");
  if (s.sliding_window < 0) return Invalid(op, "shape.sliding_window is negative");
  if (qkv.ndim() != 2) return Invalid(op, "qkv must be 2-D [N, q + 2 kv], is " + ShapeToString(qkv.shape()));
  const DType t = qkv.dtype();
  if (t != DType::kF32 && t != DType::kBF16 && t != DType::kF16) {
    return Invalid(op, std::string("qkv dtype ") + DTypeName(t) + " is not F32/BF16/F16");
  }
  const int64_t need = int64_t{s.num_heads + 2 * s.num_kv_heads} * s.head_dim;
  if (qkv.dim(1) < need || qkv.dim(1) >= (int64_t{1} << 31)) {
    return Invalid(
        op, "qkv has " + std::to_string(qkv.dim(1)) + " columns, needs at least q + 2 kv = " + std::to_string(need));
  }
  if (seq_starts.empty() || seq_starts.front() < 0 || seq_starts.back() > qkv.dim(0)) {
    return Invalid(op, "seq_starts must be S + 1 offsets within [0, " + std::to_string(qkv.dim(0)) + "]");
  }
  for (size_t i = 1; i < seq_starts.size(); ++i) {
    if (seq_starts[i] < seq_starts[i - 1]) {
      return Invalid(op, "seq_starts decreases at index " + std::to_string(i));
    }
  }
  return Status::Ok();
}

Status CheckRows(const char* op, const char* name, const Tensor& t, int64_t rows, int64_t cols, DType dtype) {
  if (t.ndim() != 2 || t.dim(0) != rows || t.dim(1) != cols) {
    return Invalid(op, std::string(name) + " must be [" + std::to_string(rows) + ", " + std::to_string(cols) +
                           "], is " + ShapeToString(t.shape()));
  }
  if (t.dtype() != dtype) {
    return Invalid(op, std::string(name) + " dtype " + DTypeName(t.dtype()) + " should be " + DTypeName(dtype));
  }
  return Status::Ok();
}

// Grid of the row kernels: a warp per storage row, a y-block per group.
dim3 RowGrid(int64_t rows, int groups) {
  return dim3(static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock), static_cast<unsigned>(groups));
}

// The forward row kernel: rows of up to 1024 visible keys in one pass over
// the scores. (Segments of 16 chunks a lane would keep 2048 in registers,
// but at 191 registers a thread they ran slower on an H200 than re-reading
// the longer rows.)
template <typename T>
void LaunchSoftmaxRows(const RowParams& rp, int64_t rows, int gn, int64_t max_visible, cudaStream_t stream) {
  const dim3 grid = RowGrid(rows, gn);
  if (max_visible <= 512) {
    SoftmaxRowsKernel<T, 4><<<grid, 32 * kRowsPerBlock, 0, stream>>>(rp, static_cast<int>(rows));
  } else {
    SoftmaxRowsKernel<T, 8><<<grid, 32 * kRowsPerBlock, 0, stream>>>(rp, static_cast<int>(rows));
  }
}

// Runs `body` with the handle on `stream`, then puts the handle's stream back.
template <typename Body>
Status OnStream(cublasHandle_t handle, cudaStream_t stream, Body body) {
  cudaStream_t old = nullptr;
  if (cublasGetStream(handle, &old) != CUBLAS_STATUS_SUCCESS ||
      cublasSetStream(handle, stream) != CUBLAS_STATUS_SUCCESS) {
    return Status::Internal("CausalAttention: cannot set the cuBLAS handle's stream");
  }
  const Status st = body();
  cublasSetStream(handle, old);
  return st;
}

RowParams MakeRowParams(const Layout& l, const Plan& p, const Chunking& ch, const Mask& mask, int64_t row0, int c0,
                        int g0) {
  RowParams r{};
  r.slot_floats = ch.slot_floats;
  r.ld = static_cast<int>(p.ld);
  r.mask = mask;
  r.c0 = c0;
  r.g0 = g0;
  r.group = l.group;
  r.num_heads = l.heads;
  r.head_dim = l.d;
  r.row0 = row0;
  r.q_cols = l.q_cols;
  return r;
}

Status ForwardSequence(cublasHandle_t handle, const Tensor& qkv, const AttentionShape& s, const Layout& l, int64_t row0,
                       int len, Tensor& out, Tensor& lse, Tensor& workspace, cudaStream_t stream) {
  const char* op = "RunCausalAttentionForward";
  const Plan p = PlanFor(len, s, l.elem);
  // [Q copy][O copy][score slots]
  const int64_t fixed = 2 * p.copy_bytes, avail = static_cast<int64_t>(workspace.nbytes()) - fixed;
  const int64_t units = std::min<int64_t>(int64_t{p.blocks} * l.kv_heads, avail > 0 ? avail / p.unit_bytes : 0);
  if (units < 1) {
    return Invalid(op, "workspace has " + std::to_string(workspace.nbytes()) + " bytes, a sequence of " +
                           std::to_string(len) + " tokens needs at least " + std::to_string(fixed + p.unit_bytes));
  }
  const Chunking ch = ChunkingFor(units, p, l);
  const Mask mask{len, s.sliding_window, kQueryBlock};
  const void* base = At(qkv.raw(), row0 * l.width, l.elem);
  char* ws = static_cast<char*>(workspace.raw());
  void* q_copy = ws;
  void* o_copy = ws + p.copy_bytes;
  float* scores = reinterpret_cast<float*>(ws + fixed);
  const int64_t gd = int64_t{l.group} * l.d;
  BATON_RETURN_IF_ERROR(Regroup(base, q_copy, len, l.kv_heads, gd, l.width, l.elem, true, stream));
  for (int b0 = 0; b0 < p.blocks; b0 += ch.bstep) {
    const int c0 = b0 * kQueryBlock, c1 = std::min(len, (b0 + ch.bstep) * kQueryBlock);
    for (int g0 = 0; g0 < l.kv_heads; g0 += ch.gstep) {
      const int gn = std::min(ch.gstep, l.kv_heads - g0);
      for (int r0 = c0; r0 < c1; r0 += kQueryBlock) {
        const BlockView b{l, p, ch, mask, c0, g0, gn, r0};
        BATON_RETURN_IF_ERROR(ScoresGemm(handle, b, b.Keys(base, l.KCol(g0)), q_copy, s.scale, scores));
      }
      RowParams rp = MakeRowParams(l, p, ch, mask, row0, c0, g0);
      rp.scores = scores;
      rp.lse_out = lse.data<float>();
      const int64_t rows = int64_t{c1 - c0} * l.group;
      BATON_DISPATCH_FLOAT(qkv.dtype(), op, LaunchSoftmaxRows<T>(rp, rows, gn, p.max_visible, stream));
      BATON_CUDA_CHECK(cudaGetLastError());
      for (int r0 = c0; r0 < c1; r0 += kQueryBlock) {
        const BlockView b{l, p, ch, mask, c0, g0, gn, r0};
        BATON_RETURN_IF_ERROR(ProbsTimesKeys(handle, b, b.Keys(base, l.VCol(g0)), scores, 1.0f, o_copy));
      }
    }
  }
  return Regroup(o_copy, At(out.raw(), row0 * l.q_cols, l.elem), len, l.kv_heads, gd, l.q_cols, l.elem, false, stream);
}

Status BackwardSequence(cublasHandle_t handle, const Tensor& qkv, const Tensor& out, const Tensor& lse,
                        const Tensor& dout, const AttentionShape& s, const Layout& l, int64_t row0, int len,
                        Tensor& dqkv, Tensor& workspace, cudaStream_t stream) {
  const char* op = "RunCausalAttentionBackward";
  const Plan p = PlanFor(len, s, l.elem);
  // [dK, dV accumulators][Q copy][dO copy][dQ copy][score slots][score-gradient slots]
  const int64_t fixed = p.acc_bytes + 3 * p.copy_bytes, avail = static_cast<int64_t>(workspace.nbytes()) - fixed;
  const int64_t units = std::min<int64_t>(int64_t{p.blocks} * l.kv_heads, avail > 0 ? avail / (2 * p.unit_bytes) : 0);
  if (units < 1) {
    return Invalid(op, "workspace has " + std::to_string(workspace.nbytes()) + " bytes, a sequence of " +
                           std::to_string(len) + " tokens needs at least " + std::to_string(fixed + 2 * p.unit_bytes));
  }
  const Chunking ch = ChunkingFor(units, p, l);
  const Mask mask{len, s.sliding_window, kQueryBlock};
  const void* base = At(qkv.raw(), row0 * l.width, l.elem);
  char* ws = static_cast<char*>(workspace.raw());
  float* dk = reinterpret_cast<float*>(ws);
  float* dv = dk + int64_t{len} * l.kv_cols;
  void* q_copy = ws + p.acc_bytes;
  void* do_copy = ws + p.acc_bytes + p.copy_bytes;
  void* dq_copy = ws + p.acc_bytes + 2 * p.copy_bytes;
  float* scores = reinterpret_cast<float*>(ws + fixed);
  float* grads = scores + int64_t{ch.gstep} * ch.slot_floats;
  BATON_CUDA_CHECK(cudaMemsetAsync(dk, 0, 2 * int64_t{len} * l.kv_cols * sizeof(float), stream));
  const int64_t gd = int64_t{l.group} * l.d;
  BATON_RETURN_IF_ERROR(Regroup(base, q_copy, len, l.kv_heads, gd, l.width, l.elem, true, stream));
  BATON_RETURN_IF_ERROR(
      Regroup(At(dout.raw(), row0 * l.q_cols, l.elem), do_copy, len, l.kv_heads, gd, l.q_cols, l.elem, true, stream));
  for (int b0 = 0; b0 < p.blocks; b0 += ch.bstep) {
    const int c0 = b0 * kQueryBlock, c1 = std::min(len, (b0 + ch.bstep) * kQueryBlock);
    for (int g0 = 0; g0 < l.kv_heads; g0 += ch.gstep) {
      const int gn = std::min(ch.gstep, l.kv_heads - g0);
      for (int r0 = c0; r0 < c1; r0 += kQueryBlock) {
        const BlockView b{l, p, ch, mask, c0, g0, gn, r0};
        BATON_RETURN_IF_ERROR(ScoresGemm(handle, b, b.Keys(base, l.KCol(g0)), q_copy, s.scale, scores));
        BATON_RETURN_IF_ERROR(ScoresGemm(handle, b, b.Keys(base, l.VCol(g0)), do_copy, 1.0f, grads));
      }
      RowParams rp = MakeRowParams(l, p, ch, mask, row0, c0, g0);
      rp.scores = scores;
      rp.grads = grads;
      rp.lse_in = lse.data<float>();
      rp.out = out.raw();
      rp.dout = dout.raw();
      const int64_t rows = int64_t{c1 - c0} * l.group;
      BATON_DISPATCH_FLOAT(qkv.dtype(), op,
                           SoftmaxGradRowsKernel<T>
                           <<<RowGrid(rows, gn), 32 * kRowsPerBlock, 0, stream>>>(rp, static_cast<int>(rows)));
      BATON_CUDA_CHECK(cudaGetLastError());
      for (int r0 = c0; r0 < c1; r0 += kQueryBlock) {
        const BlockView b{l, p, ch, mask, c0, g0, gn, r0};
        BATON_RETURN_IF_ERROR(ProbsTimesKeys(handle, b, b.Keys(base, l.KCol(g0)), grads, s.scale, dq_copy));
        BATON_RETURN_IF_ERROR(ProbsTransposedTimesRows(handle, b, q_copy, grads, s.scale, dk));
        BATON_RETURN_IF_ERROR(ProbsTransposedTimesRows(handle, b, do_copy, scores, 1.0f, dv));
      }
    }
  }
  char* dqkv_rows = At(dqkv.raw(), row0 * l.width, l.elem);
  BATON_RETURN_IF_ERROR(Regroup(dq_copy, dqkv_rows, len, l.kv_heads, gd, l.width, l.elem, false, stream));
  const int threads = static_cast<int>(std::min<int64_t>(256, RoundUp(l.kv_cols, 32)));
  BATON_DISPATCH_FLOAT(qkv.dtype(), op,
                       StoreKvGradKernel<T><<<len, threads, 0, stream>>>(
                           dk, reinterpret_cast<T*>(dqkv_rows), len, static_cast<int>(l.kv_cols), l.width, l.q_cols));
  BATON_CUDA_CHECK(cudaGetLastError());
  return Status::Ok();
}

Status CheckWorkspace(const char* op, const Tensor& workspace) {
  if (reinterpret_cast<uintptr_t>(workspace.raw()) % 16 != 0) {
    return Invalid(op, "workspace must start on a 16-byte boundary (the row kernels load 16 bytes at a time)");
  }
  return Status::Ok();
}

}  // namespace

size_t CausalAttentionWorkspaceBytes(const std::vector<int>& seq_starts, const AttentionShape& shape, DType dtype,
                                     size_t score_budget) {
  if (shape.num_heads <= 0 || shape.num_kv_heads <= 0 || shape.head_dim <= 0) return 0;
  if (FlashAttentionSupported(dtype, shape)) return FlashAttentionWorkspaceBytes(seq_starts, shape);
  const int64_t elem = static_cast<int64_t>(DTypeBytes(dtype, 1));
  int64_t bytes = 0;
  for (size_t i = 1; i < seq_starts.size(); ++i) {
    const int len = seq_starts[i] - seq_starts[i - 1];
    if (len <= 0) continue;
    const Plan p = PlanFor(len, shape, elem);
    const int64_t unit = 2 * p.unit_bytes;
    int64_t units =
        std::clamp<int64_t>(static_cast<int64_t>(score_budget) / unit, 1, int64_t{p.blocks} * shape.num_kv_heads);
    if (units >= shape.num_kv_heads) units = units / shape.num_kv_heads * shape.num_kv_heads;
    bytes = std::max(bytes, p.acc_bytes + 3 * p.copy_bytes + units * unit);
  }
  return static_cast<size_t>(bytes);
}

Status RunCausalAttentionForward(cublasHandle_t handle, const Tensor& qkv, const std::vector<int>& seq_starts,
                                 const AttentionShape& shape, Tensor& out, Tensor& lse, Tensor& workspace,
                                 cudaStream_t stream) {
  const char* op = "RunCausalAttentionForward";
  BATON_RETURN_IF_ERROR(CheckCommon(op, qkv, seq_starts, shape));
  const Layout l = MakeLayout(qkv, shape);
  BATON_RETURN_IF_ERROR(CheckRows(op, "out", out, qkv.dim(0), l.q_cols, qkv.dtype()));
  BATON_RETURN_IF_ERROR(CheckRows(op, "lse", lse, qkv.dim(0), l.heads, DType::kF32));
  BATON_RETURN_IF_ERROR(CheckWorkspace(op, workspace));
  if (FlashAttentionSupported(qkv, shape)) return RunFlashAttentionForward(qkv, seq_starts, shape, out, &lse, stream);
  return OnStream(handle, stream, [&]() -> Status {
    for (size_t i = 1; i < seq_starts.size(); ++i) {
      const int len = seq_starts[i] - seq_starts[i - 1];
      if (len == 0) continue;
      const Status st = ForwardSequence(handle, qkv, shape, l, seq_starts[i - 1], len, out, lse, workspace, stream);
      if (!st.ok()) return st.WithContext("sequence " + std::to_string(i - 1));
    }
    return Status::Ok();
  });
}

Status RunCausalAttentionBackward(cublasHandle_t handle, const Tensor& qkv, const Tensor& out, const Tensor& lse,
                                  const Tensor& dout, const std::vector<int>& seq_starts, const AttentionShape& shape,
                                  Tensor& dqkv, Tensor& workspace, cudaStream_t stream) {
  const char* op = "RunCausalAttentionBackward";
  BATON_RETURN_IF_ERROR(CheckCommon(op, qkv, seq_starts, shape));
  const Layout l = MakeLayout(qkv, shape);
  BATON_RETURN_IF_ERROR(CheckRows(op, "out", out, qkv.dim(0), l.q_cols, qkv.dtype()));
  BATON_RETURN_IF_ERROR(CheckRows(op, "dout", dout, qkv.dim(0), l.q_cols, qkv.dtype()));
  BATON_RETURN_IF_ERROR(CheckRows(op, "lse", lse, qkv.dim(0), l.heads, DType::kF32));
  BATON_RETURN_IF_ERROR(CheckRows(op, "dqkv", dqkv, qkv.dim(0), l.width, qkv.dtype()));
  BATON_RETURN_IF_ERROR(CheckWorkspace(op, workspace));
  const bool fused = FlashAttentionSupported(qkv, shape);
  if (fused && workspace.nbytes() < FlashAttentionWorkspaceBytes(seq_starts, shape)) {
    return Invalid(op, "workspace has " + std::to_string(workspace.nbytes()) + " bytes, the fused kernels need " +
                           std::to_string(FlashAttentionWorkspaceBytes(seq_starts, shape)));
  }
  // Every element of dqkv inside a sequence's rows and the q + 2 kv columns
  // is written below (dQ scattered from its copy, dK/dV by the store
  // kernel); the rest is zeroed first, when there is a rest.
  const bool covers_rows = seq_starts.front() == 0 && seq_starts.back() == qkv.dim(0);
  if (!covers_rows || l.width > l.q_cols + 2 * l.kv_cols) {
    BATON_CUDA_CHECK(cudaMemsetAsync(dqkv.raw(), 0, dqkv.nbytes(), stream));
  }
  if (fused) return RunFlashAttentionBackward(qkv, out, lse, dout, seq_starts, shape, dqkv, workspace, stream);
  return OnStream(handle, stream, [&]() -> Status {
    for (size_t i = 1; i < seq_starts.size(); ++i) {
      const int len = seq_starts[i] - seq_starts[i - 1];
      if (len == 0) continue;
      const Status st =
          BackwardSequence(handle, qkv, out, lse, dout, shape, l, seq_starts[i - 1], len, dqkv, workspace, stream);
      if (!st.ok()) return st.WithContext("sequence " + std::to_string(i - 1));
    }
    return Status::Ok();
  });
}

}  // namespace baton::cuda
