// PanelMatmul's AVX2 + FMA tile. Each function carries its own target
// attribute instead of -mavx2 on the file, so no inline function of a shared
// header is ever built for AVX2 and picked by the linker for a CPU without it.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "runtime/backend/cpu/panel_matmul.h"
#include "runtime/backend/cpu/panel_tile.h"

namespace baton::Avx2Fma {
namespace {

static_assert(kPanelColumns == 24, "the tile holds a panel row in three 8-float registers");

#define BATON_AVX2 __attribute__((target("avx2,fma"), always_inline)) inline

BATON_AVX2 void StoreRow(float* y, __m256 a, __m256 b, __m256 c, int cols) {
  if (cols == kPanelColumns) {
    _mm256_storeu_ps(y, a);
    _mm256_storeu_ps(y + 8, b);
    _mm256_storeu_ps(y + 16, c);
    return;
  }
  alignas(32) float row[kPanelColumns];
  _mm256_store_ps(row, a);
  _mm256_store_ps(row + 8, b);
  _mm256_store_ps(row + 16, c);
  std::memcpy(y, row, cols * sizeof(float));
}

// A partial panel's y row ends before 24 columns: it goes through a copy
// so that nothing past it is read.
BATON_AVX2 void LoadRow(const float* y, __m256& a, __m256& b, __m256& c, int cols) {
  alignas(32) float row[kPanelColumns] = {};
  const float* from = y;
  if (cols != kPanelColumns) {
    std::memcpy(row, y, cols * sizeof(float));
    from = row;
  }
  a = _mm256_loadu_ps(from);
  b = _mm256_loadu_ps(from + 8);
  c = _mm256_loadu_ps(from + 16);
}

// Twelve accumulators named one by one: an array of them made GCC spill
// every one to the stack on each step of k (half the speed).
template <int kRows>
__attribute__((target("avx2,fma"))) void RowsTile(const float* __restrict x, int64_t ldx, int64_t k,
                                                  const float* __restrict panel, float* y, int64_t ldy, int cols,
                                                  bool accumulate, Prefetch ahead) {
  __m256 a0 = _mm256_setzero_ps(), b0 = a0, c0 = a0, a1 = a0, b1 = a0, c1 = a0;
  __m256 a2 = a0, b2 = a0, c2 = a0, a3 = a0, b3 = a0, c3 = a0;
  if (accumulate) {
    LoadRow(y, a0, b0, c0, cols);
    if constexpr (kRows > 1) LoadRow(y + ldy, a1, b1, c1, cols);
    if constexpr (kRows > 2) LoadRow(y + 2 * ldy, a2, b2, c2, cols);
    if constexpr (kRows > 3) LoadRow(y + 3 * ldy, a3, b3, c3, cols);
  }
  // Two prefetches per step of k, half a step apart, walk through `ahead` in
  // 1/256-byte units: no cache line is skipped while a step covers at most
  // 128 bytes. With nothing ahead they touch the panel's own row, which is
  // already in cache.
  const char* ahead_from = ahead.bytes > 0 ? ahead.from : reinterpret_cast<const char*>(panel);
  const int64_t ahead_step = ahead.bytes > 0 ? std::min<int64_t>(ahead.bytes * 256 / k, 128 * 256) : 0;
  const int64_t ahead_half = ahead_step >> 9;
  for (int64_t kk = 0; kk < k; ++kk) {
    const float* w = panel + kk * kPanelColumns;
    const char* line = ahead_from + ((kk * ahead_step) >> 8);
    _mm_prefetch(line, _MM_HINT_T1);
    _mm_prefetch(line + ahead_half, _MM_HINT_T1);
    const __m256 w0 = _mm256_load_ps(w), w1 = _mm256_load_ps(w + 8), w2 = _mm256_load_ps(w + 16);
#define BATON_ROW(r)                                         \
  if constexpr (kRows > r) {                                 \
    const __m256 xv = _mm256_broadcast_ss(x + r * ldx + kk); \
    a##r = _mm256_fmadd_ps(xv, w0, a##r);                    \
    b##r = _mm256_fmadd_ps(xv, w1, b##r);                    \
    c##r = _mm256_fmadd_ps(xv, w2, c##r);                    \
  }
    BATON_ROW(0)
    BATON_ROW(1)
    BATON_ROW(2)
    BATON_ROW(3)
#undef BATON_ROW
  }
  StoreRow(y, a0, b0, c0, cols);
  if constexpr (kRows > 1) StoreRow(y + ldy, a1, b1, c1, cols);
  if constexpr (kRows > 2) StoreRow(y + 2 * ldy, a2, b2, c2, cols);
  if constexpr (kRows > 3) StoreRow(y + 3 * ldy, a3, b3, c3, cols);
}

#undef BATON_AVX2

}  // namespace

void Tile(const float* x, int64_t ldx, int rows, int64_t k, const float* panel, float* y, int64_t ldy, int cols,
          bool accumulate, Prefetch ahead) {
  static_assert(kTileRows == 4, "one case per row count");
  switch (rows) {
    case 4:
      RowsTile<4>(x, ldx, k, panel, y, ldy, cols, accumulate, ahead);
      return;
    case 3:
      RowsTile<3>(x, ldx, k, panel, y, ldy, cols, accumulate, ahead);
      return;
    case 2:
      RowsTile<2>(x, ldx, k, panel, y, ldy, cols, accumulate, ahead);
      return;
    default:
      RowsTile<1>(x, ldx, k, panel, y, ldy, cols, accumulate, ahead);
      return;
  }
}

}  // namespace baton::Avx2Fma
