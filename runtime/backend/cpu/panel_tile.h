// The tile of PanelMatmul (panel_matmul.h): up to kTileRows rows of x times
// one panel. Internal to the CPU backend.
#pragma once

#include <cstdint>

namespace baton {

inline constexpr int kTileRows = 4;

// y[r][0, cols) = x[r] . panel for r < rows (<= kTileRows); x rows are k
// floats apart, y rows ldy. The panel is K x kPanelColumns floats, 32-byte
// aligned.
using PanelTileFn = void (*)(const float* x, int rows, int64_t k, const float* panel, float* y, int64_t ldy,
                             int cols);

namespace Avx2Fma {
// Built for AVX2 + FMA whatever the project's -march: call it only on a CPU
// that has them.
void Tile(const float* x, int rows, int64_t k, const float* panel, float* y, int64_t ldy, int cols);
// The same, also fetching the next panel into cache: for passes over a panel
// that more rows will read again (on one pass, the hardware's own prefetch
// does better).
void TilePrefetchingNext(const float* x, int rows, int64_t k, const float* panel, float* y, int64_t ldy, int cols);
}  // namespace Avx2Fma

}  // namespace baton
