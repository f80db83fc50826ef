#include <cstdint>

#include "runtime/backend/cuda/common.cuh"
#include "runtime/backend/cuda/paged_kv_params.cuh"
#include "runtime/backend/cuda/flash_prefill.cuh"

namespace baton::cuda {
namespace {

constexpr int kRows = 64;      // queries per block (16 per warp)
constexpr int kKeys = 64;      // keys per tile
constexpr int kThreads = 128;  // 4 warps
constexpr int kPad = 8;        // halves of padding per shared row: conflict-free fragment loads

struct FlashParams {
  const void* qkv;
  int64_t width;
  const void* k_cache;
  const void* v_cache;
  const int32_t* query_start;
  const int32_t* context_len;
  const int32_t* block_tables;
  int max_blocks;
  int num_heads;
  int group;
  int block_size;
  int64_t kv_cols;
  float scale_log2;  // scale * log2(e): the softmax runs on exp2
  int window;
  void* out;
};

template <typename T>
struct Mma;
template <>
struct Mma<__nv_bfloat16> {
  static __device__ __forceinline__ void Run(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
  static __device__ __forceinline__ uint32_t Pack(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
  }
};
template <>
struct Mma<__half> {
  static __device__ __forceinline__ void Run(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
  static __device__ __forceinline__ uint32_t Pack(float lo, float hi) {
    __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
  }
};

__device__ __forceinline__ uint32_t Load2(const void* p) { return *static_cast<const uint32_t*>(p); }

// Fragment layouts (PTX ISA, mma.m16n8k16): with g = lane / 4 and
// c = lane % 4, A holds rows g and g + 8 at columns 2c, 2c+1 (+8); B holds
// column g at rows 2c, 2c+1 (+8); C holds rows g, g + 8 at columns 2c, 2c+1.
template <typename T, int D>
__global__ void __launch_bounds__(kThreads) FlashPrefillKernel(FlashParams p) {
  constexpr int kDSteps = D / 16;  // k-steps of QK^T
  constexpr int kDTiles = D / 8;   // n-tiles of the output
  constexpr int kKTiles = kKeys / 8;
  __shared__ __align__(16) T k_smem[kKeys][D + kPad];
  __shared__ __align__(16) T vt_smem[D][kKeys + kPad];  // V transposed: [dim][key]

  const int s = blockIdx.z, h = blockIdx.y;
  const int q_begin = p.query_start[s];
  const int q_len = p.query_start[s + 1] - q_begin;
  if (q_len <= kFlashMinQueryLen) return;
  const int tile_row0 = blockIdx.x * kRows;
  if (tile_row0 >= q_len) return;
  const int ctx = p.context_len[s];
  const int first_pos = ctx - q_len;  // position of the sequence's first new token

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int g = lane >> 2, c = lane & 3;
  const int row_a = tile_row0 + warp * 16 + g;  // this thread's two query rows (within the sequence)
  const int row_b = row_a + 8;
  const int pos_a = first_pos + row_a, pos_b = first_pos + row_b;

  // Q fragments for the warp's 16 rows, straight from global memory.
  const T* qkv = static_cast<const T*>(p.qkv);
  const int64_t q_col = static_cast<int64_t>(h) * D;
  const T* q_row_a = qkv + static_cast<int64_t>(q_begin + min(row_a, q_len - 1)) * p.width + q_col;
  const T* q_row_b = qkv + static_cast<int64_t>(q_begin + min(row_b, q_len - 1)) * p.width + q_col;
  uint32_t q_frag[kDSteps][4];
#pragma unroll
  for (int ks = 0; ks < kDSteps; ++ks) {
    q_frag[ks][0] = Load2(q_row_a + ks * 16 + 2 * c);
    q_frag[ks][1] = Load2(q_row_b + ks * 16 + 2 * c);
    q_frag[ks][2] = Load2(q_row_a + ks * 16 + 8 + 2 * c);
    q_frag[ks][3] = Load2(q_row_b + ks * 16 + 8 + 2 * c);
  }

  float o[kDTiles][4];
#pragma unroll
  for (int i = 0; i < kDTiles; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
  float m_a = -INFINITY, m_b = -INFINITY, l_a = 0.0f, l_b = 0.0f;

  // Keys this block needs: from the window start of its first query to its last query.
  const int last_row = min(tile_row0 + kRows, q_len) - 1;
  const int pos_hi = first_pos + last_row;
  const int key_lo = p.window > 0 ? max(0, first_pos + tile_row0 - p.window + 1) : 0;
  const int32_t* table = p.block_tables + static_cast<int64_t>(s) * p.max_blocks;
  const T* k_cache = static_cast<const T*>(p.k_cache);
  const T* v_cache = static_cast<const T*>(p.v_cache);
  const int64_t head_off = static_cast<int64_t>(h / p.group) * D;
  constexpr int kChunks = D / 8;  // 16-byte chunks per row

  for (int kb = key_lo; kb <= pos_hi; kb += kKeys) {
    __syncthreads();  // the previous tile is consumed
    // K rows: consecutive threads take consecutive chunks of a row (coalesced).
    for (int i = threadIdx.x; i < kKeys * kChunks; i += kThreads) {
      const int j = i / kChunks, chunk = i % kChunks;
      const int key = kb + j;
      uint4 v = make_uint4(0, 0, 0, 0);
      if (key <= pos_hi) {
        const int64_t slot = static_cast<int64_t>(table[key / p.block_size]) * p.block_size + key % p.block_size;
        v = *reinterpret_cast<const uint4*>(k_cache + slot * p.kv_cols + head_off + chunk * 8);
      }
      *reinterpret_cast<uint4*>(&k_smem[j][chunk * 8]) = v;
    }
    // V rows, transposed on the way in: consecutive threads take
    // consecutive keys, so their 2-byte stores share banks without conflict.
    for (int i = threadIdx.x; i < kKeys * kChunks; i += kThreads) {
      const int j = i % kKeys, chunk = i / kKeys;
      const int key = kb + j;
      uint4 v = make_uint4(0, 0, 0, 0);  // zeros, never garbage: 0 * NaN would poison O
      if (key <= pos_hi) {
        const int64_t slot = static_cast<int64_t>(table[key / p.block_size]) * p.block_size + key % p.block_size;
        v = *reinterpret_cast<const uint4*>(v_cache + slot * p.kv_cols + head_off + chunk * 8);
      }
      const T* e = reinterpret_cast<const T*>(&v);
#pragma unroll
      for (int u = 0; u < 8; ++u) vt_smem[chunk * 8 + u][j] = e[u];
    }
    __syncthreads();

    // S = Q K^T for 16 rows x 64 keys.
    float sc[kKTiles][4];
#pragma unroll
    for (int nt = 0; nt < kKTiles; ++nt) {
      sc[nt][0] = sc[nt][1] = sc[nt][2] = sc[nt][3] = 0.0f;
#pragma unroll
      for (int ks = 0; ks < kDSteps; ++ks) {
        const uint32_t b0 = Load2(&k_smem[nt * 8 + g][ks * 16 + 2 * c]);
        const uint32_t b1 = Load2(&k_smem[nt * 8 + g][ks * 16 + 8 + 2 * c]);
        Mma<T>::Run(sc[nt], q_frag[ks], b0, b1);
      }
    }
    // Mask (causal, window, past the range) and scale into log2 units.
    float tile_max_a = -INFINITY, tile_max_b = -INFINITY;
#pragma unroll
    for (int nt = 0; nt < kKTiles; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int key = kb + nt * 8 + 2 * c + (e & 1);
        const int pos = e < 2 ? pos_a : pos_b;
        const bool ok = key <= pos && (p.window <= 0 || key > pos - p.window);
        sc[nt][e] = ok ? sc[nt][e] * p.scale_log2 : -INFINITY;
      }
      tile_max_a = fmaxf(tile_max_a, fmaxf(sc[nt][0], sc[nt][1]));
      tile_max_b = fmaxf(tile_max_b, fmaxf(sc[nt][2], sc[nt][3]));
    }
    // A row's 64 scores sit in the 4 threads of a quad.
    tile_max_a = fmaxf(tile_max_a, __shfl_xor_sync(0xffffffffu, tile_max_a, 1));
    tile_max_a = fmaxf(tile_max_a, __shfl_xor_sync(0xffffffffu, tile_max_a, 2));
    tile_max_b = fmaxf(tile_max_b, __shfl_xor_sync(0xffffffffu, tile_max_b, 1));
    tile_max_b = fmaxf(tile_max_b, __shfl_xor_sync(0xffffffffu, tile_max_b, 2));
    const float new_m_a = fmaxf(m_a, tile_max_a), new_m_b = fmaxf(m_b, tile_max_b);
    // A row with no key yet keeps m = -inf; exp2 against 0 then gives zeros, not NaN.
    const float base_a = new_m_a == -INFINITY ? 0.0f : new_m_a;
    const float base_b = new_m_b == -INFINITY ? 0.0f : new_m_b;
    const float corr_a = exp2f(m_a - base_a), corr_b = exp2f(m_b - base_b);
    m_a = new_m_a;
    m_b = new_m_b;
    float sum_a = 0.0f, sum_b = 0.0f;
    uint32_t p_frag[kKTiles / 2][4];
#pragma unroll
    for (int nt = 0; nt < kKTiles; ++nt) {
      const float p0 = exp2f(sc[nt][0] - base_a), p1 = exp2f(sc[nt][1] - base_a);
      const float p2 = exp2f(sc[nt][2] - base_b), p3 = exp2f(sc[nt][3] - base_b);
      sum_a += p0 + p1;
      sum_b += p2 + p3;
      // Two adjacent 8-key C tiles make one 16-key A fragment.
      p_frag[nt / 2][(nt & 1) * 2 + 0] = Mma<T>::Pack(p0, p1);
      p_frag[nt / 2][(nt & 1) * 2 + 1] = Mma<T>::Pack(p2, p3);
    }
    l_a = l_a * corr_a + sum_a;
    l_b = l_b * corr_b + sum_b;
#pragma unroll
    for (int dt = 0; dt < kDTiles; ++dt) {
      o[dt][0] *= corr_a;
      o[dt][1] *= corr_a;
      o[dt][2] *= corr_b;
      o[dt][3] *= corr_b;
    }
    // O += P V
#pragma unroll
    for (int kk = 0; kk < kKTiles / 2; ++kk) {
#pragma unroll
      for (int dt = 0; dt < kDTiles; ++dt) {
        const uint32_t b0 = Load2(&vt_smem[dt * 8 + g][kk * 16 + 2 * c]);
        const uint32_t b1 = Load2(&vt_smem[dt * 8 + g][kk * 16 + 8 + 2 * c]);
        Mma<T>::Run(o[dt], p_frag[kk], b0, b1);
      }
    }
  }

  l_a += __shfl_xor_sync(0xffffffffu, l_a, 1);
  l_a += __shfl_xor_sync(0xffffffffu, l_a, 2);
  l_b += __shfl_xor_sync(0xffffffffu, l_b, 1);
  l_b += __shfl_xor_sync(0xffffffffu, l_b, 2);
  const float inv_a = l_a > 0.0f ? 1.0f / l_a : 0.0f, inv_b = l_b > 0.0f ? 1.0f / l_b : 0.0f;
  T* out = static_cast<T*>(p.out);
  const int64_t out_cols = static_cast<int64_t>(p.num_heads) * D;
#pragma unroll
  for (int dt = 0; dt < kDTiles; ++dt) {
    const int col = dt * 8 + 2 * c;
    if (row_a < q_len) {
      *reinterpret_cast<uint32_t*>(out + static_cast<int64_t>(q_begin + row_a) * out_cols + q_col + col) =
          Mma<T>::Pack(o[dt][0] * inv_a, o[dt][1] * inv_a);
    }
    if (row_b < q_len) {
      *reinterpret_cast<uint32_t*>(out + static_cast<int64_t>(q_begin + row_b) * out_cols + q_col + col) =
          Mma<T>::Pack(o[dt][2] * inv_b, o[dt][3] * inv_b);
    }
  }
}

template <typename T, int D>
void Launch(const FlashParams& p, const PagedAttentionBatch& batch, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>((batch.max_query_len + kRows - 1) / kRows), static_cast<unsigned>(p.num_heads),
                  static_cast<unsigned>(batch.num_seqs));
  FlashPrefillKernel<T, D><<<grid, kThreads, 0, stream>>>(p);
  CheckLaunch("PagedAttention flash prefill");
}

}  // namespace

bool FlashPrefillSupported(DType dtype, int head_dim) {
  return (dtype == DType::kBF16 || dtype == DType::kF16) && (head_dim == 64 || head_dim == 128);
}

void LaunchFlashPrefill(const Tensor& qkv, const Tensor& cache_k, const Tensor& cache_v,
                        const PagedAttentionBatch& batch, const AttentionShape& shape, Tensor& out,
                        cudaStream_t stream) {
  const int d = shape.head_dim;
  Require(FlashPrefillSupported(qkv.dtype(), d), "PagedAttention", "flash prefill needs F16/BF16 and D 64 or 128");
  // 4-byte fragment loads of q and 16-byte loads of K/V rows.
  Require(qkv.dim(1) % 2 == 0 && reinterpret_cast<uintptr_t>(qkv.raw()) % 4 == 0 &&
              reinterpret_cast<uintptr_t>(cache_k.raw()) % 16 == 0 &&
              reinterpret_cast<uintptr_t>(cache_v.raw()) % 16 == 0 && reinterpret_cast<uintptr_t>(out.raw()) % 4 == 0,
          "PagedAttention", "flash prefill needs aligned qkv, caches and out");
  if (batch.num_seqs == 0 || batch.max_query_len <= kFlashMinQueryLen) return;
  FlashParams p;
  FillPagedKvParams(p, qkv, cache_k, cache_v, batch, shape);
  p.scale_log2 = shape.scale * 1.4426950408889634f;
  p.window = shape.sliding_window;
  p.out = out.raw();
  if (qkv.dtype() == DType::kBF16) {
    if (d == 64) {
      Launch<__nv_bfloat16, 64>(p, batch, stream);
    } else {
      Launch<__nv_bfloat16, 128>(p, batch, stream);
    }
  } else {
    if (d == 64) {
      Launch<__half, 64>(p, batch, stream);
    } else {
      Launch<__half, 128>(p, batch, stream);
    }
  }
}

}  // namespace baton::cuda
