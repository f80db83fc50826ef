// The CPU's gelu_new against its tanh definition, in double.
#include <gtest/gtest.h>

#include <cmath>

#include "runtime/backend/cpu/cpu_backend.h"

namespace baton {
namespace {

TEST(CpuGeluNew, MatchesTheTanhFormulaOverTheWholeRange) {
  CpuBackend backend(1);
  const int64_t n = 4001;
  Tensor x = Tensor::Empty({n}, DType::kF32);
  for (int64_t i = 0; i < n; ++i) x.data<float>()[i] = -20.0f + 0.01f * static_cast<float>(i);  // [-20, 20]
  const Tensor input = x.Clone();
  backend.GeluNew(x);
  for (int64_t i = 0; i < n; ++i) {
    const double a = input.data<float>()[i];
    const double want = 0.5 * a * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (a + 0.044715 * a * a * a)));
    ASSERT_NEAR(x.data<float>()[i], want, 1e-6 * std::fabs(a) + 1e-7) << "at " << a;
  }
}

TEST(CpuGeluNew, ZeroStaysZeroAndLargeInputsStayFinite) {
  CpuBackend backend(1);
  Tensor x = Tensor::Empty({3}, DType::kF32);
  x.data<float>()[0] = 0.0f;
  x.data<float>()[1] = 1e4f;
  x.data<float>()[2] = -1e4f;
  backend.GeluNew(x);
  EXPECT_EQ(x.data<float>()[0], 0.0f);
  EXPECT_EQ(x.data<float>()[1], 1e4f);
  EXPECT_EQ(x.data<float>()[2], 0.0f);  // -1e4 * sigmoid(-large): zero, not NaN
}

}  // namespace
}  // namespace baton
