#include "runtime/backend/cpu/panel_matmul.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "runtime/backend/cpu/cpu_backend.h"
#include "runtime/backend/cpu/panel_tile.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace baton {
namespace {

// The packed storage's deleter. Its type tags a shared_ptr as panels (see
// PanelsOf), and it carries the layout.
struct PanelStorage {
  PanelLayout layout;
  void operator()(void* p) const { std::free(p); }
};

// A panel is read in slices of kSliceDepth rows of k (24 KB, within L1),
// each slice by every row tile of a chunk of kChunkRows rows of x (at most
// 256 KB of x, within L2) before the next: the slice comes from memory once
// and from L1 after, where a whole panel (74 KB for GPT-2) came from L2 for
// every tile (+20 % at 64 rows). Partial sums wait in y between slices.
constexpr int64_t kSliceDepth = 256;
constexpr int64_t kChunkRows = 256;

void PortableTile(const float* x, int64_t ldx, int rows, int64_t k, const float* panel, float* y, int64_t ldy, int cols,
                  bool accumulate, Prefetch /*ahead*/) {
  float acc[kTileRows][kPanelColumns] = {};
  for (int64_t kk = 0; kk < k; ++kk) {
    const float* w = panel + kk * kPanelColumns;
    for (int r = 0; r < rows; ++r) {
      const float xv = x[r * ldx + kk];
      for (int64_t j = 0; j < kPanelColumns; ++j) acc[r][j] += xv * w[j];
    }
  }
  for (int r = 0; r < rows; ++r) {
    for (int j = 0; j < cols; ++j) y[r * ldy + j] = (accumulate ? y[r * ldy + j] : 0.0f) + acc[r][j];
  }
}

// While a chunk's tiles read a slice, they bring the next slice into cache.
// The first tile reads the slice from memory, the tiles after it from L1, and
// the hardware prefetcher, which sees only their cache hits, stops at the
// slice's end: so each slice began with a wait on memory, a quarter of a
// 16-row product's time (63 GFLOP/s a core against 89 with this). The next
// slice is shared out over the first kPrefetchingTiles tiles. A lone tile
// (4 rows or fewer) is left to the hardware prefetcher, which does better
// there.
constexpr int64_t kPrefetchingTiles = 4;

struct NextSlice {
  const char* from = nullptr;
  int64_t bytes = 0;
  int64_t tiles = 0;  // how many tiles share it
  Prefetch ShareOf(int64_t tile_index) const {
    if (tile_index >= tiles) return {};
    const int64_t share = (bytes + tiles - 1) / tiles;
    const int64_t begin = tile_index * share;
    return {from + begin, std::min(share, bytes - begin)};
  }
};

// A panel's slices follow each other and the next panel follows its last, so
// the next slice starts where this one ends; the last panel of the range
// has none.
NextSlice NextSliceOf(const PanelLayout& l, const float* slice, int64_t panel, int64_t k0, int64_t last_panel,
                      int64_t rows) {
  const int64_t k = l.cols;
  const int64_t depth = std::min(kSliceDepth, k - k0);
  const bool in_panel = k0 + depth < k;
  const int64_t row_tiles = (rows + kTileRows - 1) / kTileRows;
  if ((!in_panel && panel + 1 >= last_panel) || row_tiles < 2) return {};
  const int64_t next_depth = std::min(kSliceDepth, in_panel ? k - k0 - depth : k);
  const int64_t bytes = next_depth * kPanelColumns * static_cast<int64_t>(sizeof(float));
  return {reinterpret_cast<const char*>(slice + depth * kPanelColumns), bytes, std::min(kPrefetchingTiles, row_tiles)};
}

// Panels [first, last) of y = x . w^T.
void RunPanels(const float* x, int64_t m, const PanelLayout& l, const float* panels, int64_t first, int64_t last,
               float* y, PanelTileFn tile) {
  const int64_t k = l.cols;
  for (int64_t r0 = 0; r0 < m; r0 += kChunkRows) {
    const int64_t r1 = std::min(m, r0 + kChunkRows);
    for (int64_t p = first; p < last; ++p) {
      const int cols = static_cast<int>(std::min(kPanelColumns, l.rows - p * kPanelColumns));
      for (int64_t k0 = 0; k0 < k; k0 += kSliceDepth) {
        const float* slice = panels + (p * k + k0) * kPanelColumns;
        const int64_t depth = std::min(kSliceDepth, k - k0);
        const NextSlice next = NextSliceOf(l, slice, p, k0, last, r1 - r0);
        int64_t tile_index = 0;
        for (int64_t r = r0; r < r1; r += kTileRows, ++tile_index) {
          const int rows = static_cast<int>(std::min<int64_t>(kTileRows, r1 - r));
          tile(x + r * k + k0, k, rows, depth, slice, y + r * l.rows + p * kPanelColumns, l.rows, cols, k0 > 0,
               next.ShareOf(tile_index));
        }
      }
    }
  }
}

}  // namespace

Tensor PackPanels(const Tensor& w) {
  CpuCheck(w.dtype() == DType::kF32 && w.ndim() == 2, "PackPanels", "w must be F32 [out, in]");
  const PanelLayout layout{w.dim(0), w.dim(1)};
  const int64_t k = layout.cols;
  const size_t bytes = static_cast<size_t>(layout.panels() * k * kPanelColumns) * sizeof(float);
  void* memory = AllocateHostMemory(bytes);
  CpuCheck(memory != nullptr, "PackPanels", "out of host memory");
  std::shared_ptr<void> owner(memory, PanelStorage{layout});
  float* out = static_cast<float*>(memory);
  const float* src = w.data<float>();
  for (int64_t p = 0; p < layout.panels(); ++p) {
    float* panel = out + p * k * kPanelColumns;
    for (int64_t j = 0; j < kPanelColumns; ++j) {
      const int64_t row = p * kPanelColumns + j;
      for (int64_t kk = 0; kk < k; ++kk) panel[kk * kPanelColumns + j] = row < layout.rows ? src[row * k + kk] : 0.0f;
    }
  }
  return Tensor::View(std::move(owner), memory, w.shape(), DType::kF32);
}

const PanelLayout* PanelsOf(const Tensor& t) {
  const PanelStorage* storage = std::get_deleter<PanelStorage>(t.owner());
  if (storage == nullptr || t.raw() != t.owner().get() || t.ndim() != 2) return nullptr;
  const PanelLayout& l = storage->layout;
  return t.dim(0) == l.rows && t.dim(1) == l.cols ? &l : nullptr;
}

void PanelMatmul(const float* x, int64_t m, const Tensor& packed, float* y, int threads, PanelKernel kernel) {
  const PanelLayout* layout = PanelsOf(packed);
  CpuCheck(layout != nullptr, "PanelMatmul", "w is not packed into panels");
  const PanelTileFn tile = kernel == PanelKernel::kBest && CpuHasAvx2Fma() ? Avx2Fma::Tile : PortableTile;
  const float* panels = packed.data<float>();
  const int64_t count = layout->panels();
  // A fork and join costs a few microseconds: worth it only for real work.
  const bool split = threads > 1 && count > 1 && m * layout->rows * layout->cols >= (int64_t{1} << 20);
  if (!split) {
    RunPanels(x, m, *layout, panels, 0, count, y, tile);
    return;
  }
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
  {
    const int64_t t = omp_get_thread_num(), n = omp_get_num_threads();
    RunPanels(x, m, *layout, panels, count * t / n, count * (t + 1) / n, y, tile);
  }
#else
  RunPanels(x, m, *layout, panels, 0, count, y, tile);
#endif
}

void PanelRow(const Tensor& packed, int64_t row, float* out) {
  const PanelLayout* layout = PanelsOf(packed);
  CpuCheck(layout != nullptr && row >= 0 && row < layout->rows, "PanelRow", "not packed, or row out of range");
  const int64_t k = layout->cols;
  const float* panel = packed.data<float>() + row / kPanelColumns * k * kPanelColumns + row % kPanelColumns;
  for (int64_t kk = 0; kk < k; ++kk) out[kk] = panel[kk * kPanelColumns];
}

}  // namespace baton
