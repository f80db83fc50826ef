// Helpers for the GPU op tests: a shared CudaBackend (or a skip when no GPU
// is visible), deterministic random host tensors, NaN-poisoned device
// outputs and the relative-error metric of METHOD.md.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "runtime/backend/cpu/cpu_backend.h"
#include "runtime/backend/cuda/cuda_backend.h"
#include "runtime/core/tensor.h"

namespace baton::testing {

// The backend for `dtype`, made once per process and dtype; null (and the
// test skipped) when there is no GPU.
CudaBackend* GpuOrNull(DType dtype);
#define BATON_GPU_OR_SKIP(var, dtype)                    \
  CudaBackend* var = ::baton::testing::GpuOrNull(dtype); \
  if (var == nullptr) GTEST_SKIP() << "no CUDA GPU visible"

CpuBackend& Cpu();

// Uniform [lo, hi) float32 values, rounded to what `dtype` can hold, so the
// CPU reference and the GPU see the same inputs.
Tensor RandomHost(std::mt19937& rng, const Shape& shape, DType dtype, float lo = -1.0f, float hi = 1.0f);
Tensor HostI32(const std::vector<int32_t>& values, const Shape& shape);
// A device tensor whose every element is NaN (float) or -1 (I32 never here).
Tensor Poisoned(CudaBackend& gpu, const Shape& shape, DType dtype);

struct ErrorReport {
  double rel = 0;              // ||out - ref|| / ||ref||
  int64_t non_finite = 0;      // NaN/inf in out where ref is finite: unwritten or broken
  int64_t mismatched_nan = 0;  // ref NaN where out is not, or the reverse
  std::string ToString() const;
};
ErrorReport Compare(const Tensor& out_f32, const Tensor& ref_f32);
// Tolerance on the relative error for outputs stored in `dtype` (fp32
// accumulation everywhere): F32 is float rounding, 16-bit is one rounding
// of the output plus accumulated rounding of intermediates.
double Tolerance(DType dtype);
#define BATON_EXPECT_CLOSE(out, ref, dtype, what)                                                      \
  do {                                                                                                 \
    const ::baton::testing::ErrorReport r_ = ::baton::testing::Compare((out), (ref));                  \
    std::printf("  [%s %s] %s\n", DTypeName(dtype), std::string(what).c_str(), r_.ToString().c_str()); \
    EXPECT_EQ(r_.non_finite, 0) << (what);                                                             \
    EXPECT_EQ(r_.mismatched_nan, 0) << (what);                                                         \
    EXPECT_LE(r_.rel, ::baton::testing::Tolerance(dtype)) << (what);                                   \
  } while (0)

// Float dtypes every op is tested in.
inline std::vector<DType> TestedDTypes() { return {DType::kF32, DType::kBF16, DType::kF16}; }
inline std::string DTypeParamName(const ::testing::TestParamInfo<DType>& info) { return DTypeName(info.param); }

}  // namespace baton::testing
