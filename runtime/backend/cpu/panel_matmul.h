// Linear weights packed into column panels, and the matmul that reads them.
//
// A frozen linear weight w [N, K] (torch's [out, in]) is laid out once as
// ceil(N / 24) panels; panel p holds columns [24p, 24p + 24) of w^T, K-major:
// panel[k][j] = w[24p + j][k], zero past N. A 4-row x 24-column tile of
// y = x . w^T then streams one contiguous panel while twelve AVX2
// accumulators stay in registers.
//
// Why not OpenBLAS: sgemm packs the weight again on every call, which costs
// as much as the arithmetic when x has few rows (decode batches of 1-32), and
// its 16-row products ran at 40 GFLOP/s a core against 62 here (bench/RESULTS.md).
//
// The packed tensor keeps its logical shape [N, K] and dtype F32; its storage
// is tagged (PanelsOf) so that CpuBackend's Linear and Embedding know the
// layout. Only CpuBackend reads it: nothing else may touch its bytes.
#pragma once

#include <cstdint>

#include "runtime/core/tensor.h"

namespace baton {

inline constexpr int64_t kPanelColumns = 24;

// The layout of a packed weight: w's logical rows (out features) and columns.
struct PanelLayout {
  int64_t rows = 0;  // N
  int64_t cols = 0;  // K
  int64_t panels() const { return (rows + kPanelColumns - 1) / kPanelColumns; }
};

// w: F32 [N, K] on the host. Returns a tensor of the same shape whose storage
// is the panels.
Tensor PackPanels(const Tensor& w);

// The layout when t is (all of) a packed weight, else null.
const PanelLayout* PanelsOf(const Tensor& t);

// Which tile code runs: the AVX2+FMA one when the CPU has it, or the portable
// one (also what a test compares the fast one with).
enum class PanelKernel { kBest, kPortable };

// y [M, N] = x [M, K] . w^T, w packed. Splits the panels over `threads`
// OpenMP threads (<= 1: this thread only).
void PanelMatmul(const float* x, int64_t m, const Tensor& packed, float* y, int threads,
                 PanelKernel kernel = PanelKernel::kBest);

// Row `row` of the logical w (an embedding lookup from a tied table) into out[K].
void PanelRow(const Tensor& packed, int64_t row, float* out);

}  // namespace baton
