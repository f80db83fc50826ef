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

// Rows of x a pass over the panels takes: as many as keep x's chunk within
// about half of L2, so that every panel of the pass reads it from there.
int64_t ChunkRows(int64_t k) {
  constexpr int64_t kChunkBytes = 256 * 1024;
  return std::max<int64_t>(kTileRows, kChunkBytes / (k * 4) / kTileRows * kTileRows);
}

void PortableTile(const float* x, int rows, int64_t k, const float* panel, float* y, int64_t ldy, int cols) {
  float acc[kTileRows][kPanelColumns] = {};
  for (int64_t kk = 0; kk < k; ++kk) {
    const float* w = panel + kk * kPanelColumns;
    for (int r = 0; r < rows; ++r) {
      const float xv = x[r * k + kk];
      for (int64_t j = 0; j < kPanelColumns; ++j) acc[r][j] += xv * w[j];
    }
  }
  for (int r = 0; r < rows; ++r) std::memcpy(y + r * ldy, acc[r], cols * sizeof(float));
}

// The tile code: kBest's when the CPU has AVX2 + FMA, which prefetches the
// next panel when a pass reads each panel more than once.
struct TileChoice {
  PanelTileFn single_pass, multi_pass;
};

// Panels [first, last) of y = x . w^T.
void RunPanels(const float* x, int64_t m, const PanelLayout& l, const float* panels, int64_t first, int64_t last,
               float* y, TileChoice tiles) {
  const int64_t k = l.cols, chunk = ChunkRows(k);
  for (int64_t r0 = 0; r0 < m; r0 += chunk) {
    const int64_t r1 = std::min(m, r0 + chunk);
    const PanelTileFn tile = r1 - r0 > kTileRows ? tiles.multi_pass : tiles.single_pass;
    for (int64_t p = first; p < last; ++p) {
      const float* panel = panels + p * k * kPanelColumns;
      const int cols = static_cast<int>(std::min(kPanelColumns, l.rows - p * kPanelColumns));
      for (int64_t r = r0; r < r1; r += kTileRows) {
        const int rows = static_cast<int>(std::min<int64_t>(kTileRows, r1 - r));
        tile(x + r * k, rows, k, panel, y + r * l.rows + p * kPanelColumns, l.rows, cols);
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
  void* memory = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
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
  const TileChoice tile = kernel == PanelKernel::kBest && CpuHasAvx2Fma()
                             ? TileChoice{Avx2Fma::Tile, Avx2Fma::TilePrefetchingNext}
                             : TileChoice{PortableTile, PortableTile};
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
