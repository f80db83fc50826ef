// Backend::AddNorm (residual add fused with LayerNorm/RMSNorm): the CUDA
// kernel against CpuBackend on random inputs, both outputs poisoned first,
// and against the GPU's own unfused AddInPlace + norm; and the CPU's fused
// op bit for bit against its AddInPlace + norm (the fixture contract).
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "tests/gpu/gpu_test_util.h"

namespace baton::testing {
namespace {

struct NormCase {
  NormOp op;
  bool bias;
  const char* name;
};
constexpr NormCase kNorms[] = {{NormOp::kRmsNorm, false, "RmsNorm"},
                               {NormOp::kLayerNorm, true, "LayerNorm+b"},
                               {NormOp::kLayerNorm, false, "LayerNorm"}};
// 16-byte vector kernel up to 8192 features (16-bit) / 4096 (F32), scalar
// kernel for 4099 (odd) and 12288 (too wide to hold in registers).
constexpr int64_t kWidths[] = {64, 768, 4096, 4099, 8192, 12288};

void Unfused(Backend& be, const NormCase& c, Tensor& residual, const Tensor& x, const Tensor& w, const Tensor& b,
             float eps, Tensor& normed) {
  be.AddInPlace(residual, x);
  if (c.op == NormOp::kRmsNorm) {
    be.RmsNorm(residual, w, eps, normed);
  } else {
    be.LayerNorm(residual, w, c.bias ? b : Tensor(), eps, normed);
  }
}

TEST(CpuAddNorm, BitIdenticalToAddInPlaceThenNorm) {
  std::mt19937 rng(31);
  for (const NormCase& c : kNorms) {
    for (int64_t rows : {1, 5, 40}) {  // 40 rows: the OpenMP-parallel path
      for (int64_t h : {64, 4099}) {
        SCOPED_TRACE(std::string(c.name) + " [" + std::to_string(rows) + ", " + std::to_string(h) + "]");
        Tensor x = RandomHost(rng, {rows, h}, DType::kF32, -3.0f, 3.0f);
        Tensor residual = RandomHost(rng, {rows, h}, DType::kF32, 1.0f, 4.0f);
        Tensor w = RandomHost(rng, {h}, DType::kF32, 0.5f, 1.5f);
        Tensor b = RandomHost(rng, {h}, DType::kF32);
        Tensor r_ref = residual.Clone(), n_ref = Tensor::Empty({rows, h}, DType::kF32);
        Unfused(Cpu(), c, r_ref, x, w, b, 1e-5f, n_ref);
        Tensor n_out = Tensor::Empty({rows, h}, DType::kF32);
        Cpu().AddNorm(c.op, x, residual, w, c.bias ? b : Tensor(), 1e-5f, n_out);
        EXPECT_EQ(std::memcmp(residual.raw(), r_ref.raw(), r_ref.nbytes()), 0) << "residual";
        EXPECT_EQ(std::memcmp(n_out.raw(), n_ref.raw(), n_ref.nbytes()), 0) << "normed";
      }
    }
  }
}

class CudaAddNorm : public ::testing::TestWithParam<DType> {};

TEST_P(CudaAddNorm, MatchesCpuAndTheUnfusedOps) {
  const DType dtype = GetParam();
  BATON_GPU_OR_SKIP(gpu, dtype);
  std::mt19937 rng(32);
  for (const NormCase& c : kNorms) {
    for (int64_t rows : {1, 17}) {
      for (int64_t h : kWidths) {
        const std::string what =
            std::string("AddNorm ") + c.name + " [" + std::to_string(rows) + ", " + std::to_string(h) + "]";
        SCOPED_TRACE(what);
        // An offset mean checks that LayerNorm's variance is taken about the mean.
        Tensor x = RandomHost(rng, {rows, h}, dtype, -1.0f, 1.0f);
        Tensor residual = RandomHost(rng, {rows, h}, dtype, 2.0f, 5.0f);
        Tensor w = RandomHost(rng, {h}, dtype, 0.5f, 1.5f);
        Tensor b = RandomHost(rng, {h}, dtype);
        Tensor dx = gpu->Upload(x, dtype), dw = gpu->Upload(w, dtype), db = gpu->Upload(b, dtype);

        Tensor dres = gpu->Upload(residual, dtype);
        Tensor dnormed = Poisoned(*gpu, {rows, h}, dtype);
        gpu->AddNorm(c.op, dx, dres, dw, c.bias ? db : Tensor(), 1e-5f, dnormed);
        Tensor res_ref = residual.Clone(), unused = Tensor::Empty({rows, h}, DType::kF32);
        Cpu().AddNorm(c.op, x, res_ref, w, c.bias ? b : Tensor(), 1e-5f, unused);
        const Tensor got_res = gpu->ToHostF32(dres), got_normed = gpu->ToHostF32(dnormed);
        BATON_EXPECT_CLOSE(got_res, res_ref, dtype, what + " residual");
        // The norm is of the residual as stored: in 16 bits that is the
        // rounded sum, whose rounding LayerNorm's centring would amplify
        // (values ~3.5 +- 1.5) if the reference normed the float32 sum.
        Tensor normed_ref = Tensor::Empty({rows, h}, DType::kF32);
        if (c.op == NormOp::kRmsNorm) {
          Cpu().RmsNorm(got_res, w, 1e-5f, normed_ref);
        } else {
          Cpu().LayerNorm(got_res, w, c.bias ? b : Tensor(), 1e-5f, normed_ref);
        }
        BATON_EXPECT_CLOSE(got_normed, normed_ref, dtype, what + " normed");

        // The GPU's unfused pair on the same inputs: the residual is the
        // same rounding of the same sum, and RMSNorm sums in the same order.
        Tensor ures = gpu->Upload(residual, dtype);
        Tensor unormed = Poisoned(*gpu, {rows, h}, dtype);
        Unfused(*gpu, c, ures, dx, dw, db, 1e-5f, unormed);
        const Tensor u_res = gpu->ToHostF32(ures), u_normed = gpu->ToHostF32(unormed);
        EXPECT_EQ(std::memcmp(got_res.raw(), u_res.raw(), u_res.nbytes()), 0) << "residual differs from AddInPlace";
        if (c.op == NormOp::kRmsNorm) {
          EXPECT_EQ(std::memcmp(got_normed.raw(), u_normed.raw(), u_normed.nbytes()), 0)
              << "normed differs from AddInPlace + RmsNorm";
        } else {
          BATON_EXPECT_CLOSE(got_normed, u_normed, dtype, what + " vs unfused");
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllFloat, CudaAddNorm, ::testing::ValuesIn(TestedDTypes()), DTypeParamName);

}  // namespace
}  // namespace baton::testing
