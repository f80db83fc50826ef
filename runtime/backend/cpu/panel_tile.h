// The tile of PanelMatmul (panel_matmul.h): up to kTileRows rows of x times
// a slice of one panel. Internal to the CPU backend.
#pragma once

#include <cstdint>

namespace baton {

inline constexpr int kTileRows = 4;

// y[r][0, cols) (+)= x[r][0, k) . panel for r < rows (<= kTileRows): adds to
// y when `accumulate`, else overwrites it. x rows are ldx floats apart, y
// rows ldy; the panel slice is k x kPanelColumns floats, 32-byte aligned.
// Along the way the tile asks for `ahead.bytes` bytes from `ahead.from` to be
// brought into cache (the next slice, for a later tile), spread over its k.
struct Prefetch {
  const char* from = nullptr;
  int64_t bytes = 0;
};
using PanelTileFn = void (*)(const float* x, int64_t ldx, int rows, int64_t k, const float* panel, float* y,
                             int64_t ldy, int cols, bool accumulate, Prefetch ahead);

namespace Avx2Fma {
// Built for AVX2 + FMA whatever the project's -march: call it only on a CPU
// that has them (CpuHasAvx2Fma).
void Tile(const float* x, int64_t ldx, int rows, int64_t k, const float* panel, float* y, int64_t ldy, int cols,
          bool accumulate, Prefetch ahead);
}  // namespace Avx2Fma

}  // namespace baton
