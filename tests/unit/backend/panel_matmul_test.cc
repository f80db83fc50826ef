// The panel-packed matmul (runtime/backend/cpu/panel_matmul.h) against a
// double-precision product of the unpacked weight, over shapes that cover
// partial tiles, partial panels and several row chunks; and the CPU
// backend's Linear and Embedding on packed weights against unpacked ones.
#include "runtime/backend/cpu/panel_matmul.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "runtime/backend/cpu/cpu_backend.h"

namespace baton {
namespace {

Tensor RandomMatrix(int64_t rows, int64_t cols, unsigned seed) {
  Tensor t = Tensor::Empty({rows, cols}, DType::kF32);
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = dist(gen);
  return t;
}

// x . w^T in double, and the sum of |terms| of each entry (the scale its
// float rounding error grows with).
void Reference(const Tensor& x, const Tensor& w, std::vector<double>& y, std::vector<double>& scale) {
  const int64_t m = x.dim(0), k = x.dim(1), n = w.dim(0);
  y.assign(m * n, 0.0);
  scale.assign(m * n, 0.0);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      for (int64_t kk = 0; kk < k; ++kk) {
        const double term = double{x.data<float>()[i * k + kk]} * w.data<float>()[j * k + kk];
        y[i * n + j] += term;
        scale[i * n + j] += std::fabs(term);
      }
    }
  }
}

void ExpectProduct(int64_t m, int64_t n, int64_t k, PanelKernel kernel, int threads) {
  const Tensor x = RandomMatrix(m, k, 1), w = RandomMatrix(n, k, 2);
  const Tensor packed = PackPanels(w);
  std::vector<float> y(m * n, NAN);
  PanelMatmul(x.data<float>(), m, packed, y.data(), threads, kernel);
  std::vector<double> want, scale;
  Reference(x, w, want, scale);
  for (int64_t i = 0; i < m * n; ++i) {
    ASSERT_NEAR(y[i], want[i], 1e-6 * scale[i] + 1e-7)
        << "m=" << m << " n=" << n << " k=" << k << " entry " << i << (kernel == PanelKernel::kBest ? " best" : " portable");
  }
}

TEST(PanelMatmul, MatchesTheProductForEveryTileAndPanelRemainder) {
  for (PanelKernel kernel : {PanelKernel::kBest, PanelKernel::kPortable}) {
    for (int64_t m : {1, 2, 3, 4, 5, 8, 17}) {
      for (int64_t n : {1, 23, 24, 25, 49}) {
        for (int64_t k : {1, 7, 64, 257}) ExpectProduct(m, n, k, kernel, 1);  // 257: a second slice of k
      }
    }
  }
}

TEST(PanelMatmul, MatchesTheProductOverSeveralRowChunksAndSlices) {
  // 300 rows are two chunks (256 + 44), 600 columns three slices of k (256 + 256 + 88).
  ExpectProduct(300, 30, 600, PanelKernel::kBest, 1);
  ExpectProduct(300, 30, 600, PanelKernel::kPortable, 1);
}

TEST(PanelMatmul, ThreadsSplitThePanelsWithoutChangingAnyResult) {
  const int64_t m = 16, n = 100, k = 1000;  // large enough to be split
  const Tensor x = RandomMatrix(m, k, 3), packed = PackPanels(RandomMatrix(n, k, 4));
  std::vector<float> one(m * n), two(m * n, NAN);
  PanelMatmul(x.data<float>(), m, packed, one.data(), 1);
  PanelMatmul(x.data<float>(), m, packed, two.data(), 2);
  EXPECT_EQ(one, two);
  ExpectProduct(m, n, k, PanelKernel::kBest, 2);
}

TEST(PanelMatmul, OnlyAWholePackedTensorReadsAsPanels) {
  const Tensor w = RandomMatrix(30, 8, 5);
  const Tensor packed = PackPanels(w);
  ASSERT_NE(PanelsOf(packed), nullptr);
  EXPECT_EQ(PanelsOf(packed)->rows, 30);
  EXPECT_EQ(PanelsOf(packed)->cols, 8);
  EXPECT_EQ(PanelsOf(packed)->panels(), 2);
  EXPECT_EQ(PanelsOf(w), nullptr);
  EXPECT_EQ(PanelsOf(packed.Rows(0, 10)), nullptr);  // a view: not the layout its tag describes
  EXPECT_EQ(PanelsOf(packed.Reshape({8, 30})), nullptr);
  EXPECT_EQ(PanelsOf(Tensor()), nullptr);
}

TEST(PanelMatmul, RowsReadBackFromThePanels) {
  const Tensor w = RandomMatrix(50, 13, 6);
  const Tensor packed = PackPanels(w);
  std::vector<float> row(13);
  for (int64_t r = 0; r < 50; ++r) {
    PanelRow(packed, r, row.data());
    for (int64_t c = 0; c < 13; ++c) ASSERT_EQ(row[c], w.data<float>()[r * 13 + c]) << r << "," << c;
  }
}

TEST(CpuBackendPanels, LinearAndEmbeddingOnPackedWeightsMatchUnpacked) {
  CpuBackend backend(1);
  const Tensor x = RandomMatrix(6, 40, 7), w = RandomMatrix(50, 40, 8), bias = RandomMatrix(1, 50, 9).Reshape({50});
  Tensor packed = w;
  backend.PackLinearWeight(packed);
  ASSERT_NE(PanelsOf(packed), nullptr);
  ASSERT_EQ(PanelsOf(w), nullptr);  // the caller's other handles keep the plain layout
  const void* storage = packed.raw();
  backend.PackLinearWeight(packed);  // packing twice is a no-op
  EXPECT_EQ(packed.raw(), storage);

  for (int64_t rows : {1, 6}) {
    const Tensor in = x.Rows(0, rows);
    Tensor plain_y = Tensor::Empty({rows, 50}, DType::kF32), packed_y = Tensor::Empty({rows, 50}, DType::kF32);
    backend.Linear(in, w, bias, plain_y);
    backend.Linear(in, packed, bias, packed_y);
    for (int64_t i = 0; i < plain_y.numel(); ++i) {
      ASSERT_NEAR(packed_y.data<float>()[i], plain_y.data<float>()[i], 1e-5) << "rows " << rows << " entry " << i;
    }
  }

  Tensor ids = Tensor::Empty({3}, DType::kI32);
  for (int i = 0; i < 3; ++i) ids.data<int32_t>()[i] = std::vector<int32_t>{49, 0, 24}[i];
  Tensor plain_e = Tensor::Empty({3, 40}, DType::kF32), packed_e = Tensor::Empty({3, 40}, DType::kF32);
  backend.Embedding(ids, w, plain_e);
  backend.Embedding(ids, packed, packed_e);
  for (int64_t i = 0; i < plain_e.numel(); ++i) ASSERT_EQ(packed_e.data<float>()[i], plain_e.data<float>()[i]);
}

}  // namespace
}  // namespace baton
