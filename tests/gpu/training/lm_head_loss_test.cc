// cuda::RunLmHeadCrossEntropy (the chunked LM head + cross-entropy) against
// the CPU reference LmHeadCrossEntropy on the same dtype-rounded inputs:
// the loss sum and token count, dx (poisoned first) and dhead (pre-filled
// with random values, so += is checked), in F32 and BF16, for vocabularies
// that take the 4-wide path (V % 4 == 0) and the scalar one, with ignored
// rows and chunks that do not divide N. Argument checks run without a GPU.
#include "runtime/backend/cuda/training/lm_head_loss.cuh"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "runtime/training/lm_head_loss.h"
#include "tests/gpu/gpu_test_util.h"

namespace baton::testing {
namespace {

struct LossCase {
  int64_t n, h, vocab, chunk_rows;
  // x's range. x in [60, 80] gives logits beyond 88, where expf overflows
  // unless the row max is subtracted; H stays small there so the two GEMMs'
  // rounding (absolute, growing with the logits) stays within F32 tolerance.
  float x_lo, x_hi;
};

// Targets in [0, V) with every 5th row (and row 1) ignored, the first
// counted row aiming at id 0 and the last at V - 1.
std::vector<int32_t> MakeTargets(std::mt19937& rng, int64_t n, int64_t vocab) {
  std::uniform_int_distribution<int32_t> id(0, static_cast<int32_t>(vocab - 1));
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) t[i] = (i % 5 == 4 || i == 1) ? kIgnoreIndex : id(rng);
  t[0] = 0;
  if (n > 2) t[n - 1] = static_cast<int32_t>(vocab - 1);
  return t;
}

// Both sides see the same dtype-rounded inputs and compute the logits in
// fp32, so BF16 differs from the reference only in summation order too
// (1.6e-8 measured on an H200); 1e-4 leaves room for other cuBLAS kernels.
double LossTolerance(DType dtype) { return dtype == DType::kF32 ? 1e-5 : 1e-4; }

Tensor Workspace(CudaBackend& gpu, int64_t chunk_rows, int64_t n, int64_t vocab, DType dtype) {
  const size_t bytes = cuda::LmHeadLossWorkspaceBytes(std::min(chunk_rows, n), vocab, dtype);
  return Poisoned(gpu, {static_cast<int64_t>((bytes + 3) / 4)}, DType::kF32);  // scratch: no zeros to rely on
}

class CudaLmHeadLoss : public ::testing::TestWithParam<DType> {};

TEST_P(CudaLmHeadLoss, MatchesCpuReference) {
  const DType dtype = GetParam();
  BATON_GPU_OR_SKIP(gpu, dtype);
  std::mt19937 rng(61);
  for (const LossCase& c : {LossCase{37, 96, 1000, 16, -1.0f, 1.0f},    // 4-wide, one tile a row
                            LossCase{29, 64, 50257, 8, -1.0f, 1.0f},    // scalar, ~100 tiles a row
                            LossCase{20, 128, 50264, 7, -1.0f, 1.0f},   // 4-wide, many tiles
                            LossCase{5, 33, 1003, 64, -1.0f, 1.0f},     // chunk > N, odd H
                            LossCase{11, 4, 1000, 4, 60.0f, 80.0f}}) {  // logits past 88: expf overflows
    const std::string name = "N=" + std::to_string(c.n) + " H=" + std::to_string(c.h) +
                             " V=" + std::to_string(c.vocab) + " chunk=" + std::to_string(c.chunk_rows) +
                             (c.x_hi > 1.0f ? " big logits" : "");
    SCOPED_TRACE(name);
    Tensor x = RandomHost(rng, {c.n, c.h}, dtype, c.x_lo, c.x_hi);
    Tensor head = RandomHost(rng, {c.vocab, c.h}, dtype, -0.5f, 0.5f);
    const std::vector<int32_t> ids = MakeTargets(rng, c.n, c.vocab);
    Tensor targets = HostI32(ids, {c.n});
    int64_t counted = 0;
    for (int32_t t : ids) counted += t != kIgnoreIndex;
    const float grad_scale = 1.0f / static_cast<float>(counted);

    // The gradient alone first, to size the random pre-fill like it (a much
    // larger one would hide the gradient's error in the comparison).
    Tensor ref_dx = Tensor::Empty({c.n, c.h}, DType::kF32);
    Tensor ref_dhead = Tensor::Zeros({c.vocab, c.h}, DType::kF32);
    const LossSum ref = LmHeadCrossEntropy(x, head, targets, grad_scale, &ref_dx, &ref_dhead);
    ASSERT_EQ(ref.tokens, counted);
    double sq = 0;
    for (int64_t i = 0; i < ref_dhead.numel(); ++i) {
      const double v = ref_dhead.data<float>()[i];
      sq += v * v;
    }
    const float rms = static_cast<float>(std::sqrt(sq / static_cast<double>(ref_dhead.numel())));
    Tensor prefill = RandomHost(rng, {c.vocab, c.h}, DType::kF32, -rms, rms);
    Tensor ref_total = prefill.Clone();
    LmHeadCrossEntropy(x, head, targets, grad_scale, &ref_dx, &ref_total);

    Tensor dev_x = gpu->Upload(x, dtype), dev_head = gpu->Upload(head, dtype);
    Tensor dev_targets = gpu->Upload(targets, DType::kI32);
    Tensor dx = Poisoned(*gpu, {c.n, c.h}, dtype);
    Tensor dhead = gpu->Upload(prefill, DType::kF32);
    Tensor ws = Workspace(*gpu, c.chunk_rows, c.n, c.vocab, dtype);
    StatusOr<LossSum> got = cuda::RunLmHeadCrossEntropy(gpu->cublas(), dev_x, dev_head, dev_targets, grad_scale, &dx,
                                                        &dhead, ws, c.chunk_rows, gpu->stream());
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(got->tokens, ref.tokens);
    std::printf("  [%s lm_head loss %s] gpu %.9g cpu %.9g\n", DTypeName(dtype), name.c_str(), got->sum, ref.sum);
    EXPECT_NEAR(got->sum, ref.sum, LossTolerance(dtype) * std::fabs(ref.sum));
    BATON_EXPECT_CLOSE(gpu->ToHostF32(dx), ref_dx, dtype, "dx " + name);
    // dhead is F32 either way; its inputs (dlogits) are rounded to T.
    BATON_EXPECT_CLOSE(gpu->ToHostF32(dhead), ref_total, dtype, "dhead (pre-filled) " + name);

    // Evaluation: the loss alone, with a chunk size of its own.
    StatusOr<LossSum> eval =
        cuda::RunLmHeadCrossEntropy(gpu->cublas(), dev_x, dev_head, dev_targets, 1.0f, nullptr, nullptr, ws,
                                    c.chunk_rows - 1 > 0 ? c.chunk_rows - 1 : 1, gpu->stream());
    ASSERT_TRUE(eval.ok()) << eval.status().ToString();
    EXPECT_EQ(eval->tokens, ref.tokens);
    EXPECT_NEAR(eval->sum, ref.sum, LossTolerance(dtype) * std::fabs(ref.sum));
  }
}

TEST_P(CudaLmHeadLoss, AllRowsIgnoredGiveNoLossAndNoGradient) {
  const DType dtype = GetParam();
  BATON_GPU_OR_SKIP(gpu, dtype);
  std::mt19937 rng(62);
  const int64_t n = 6, h = 40, vocab = 1001;
  Tensor x = RandomHost(rng, {n, h}, dtype), head = RandomHost(rng, {vocab, h}, dtype);
  Tensor prefill = RandomHost(rng, {vocab, h}, DType::kF32);
  Tensor dx = Poisoned(*gpu, {n, h}, dtype);
  Tensor dhead = gpu->Upload(prefill, DType::kF32);
  Tensor ws = Workspace(*gpu, 4, n, vocab, dtype);
  StatusOr<LossSum> got =
      cuda::RunLmHeadCrossEntropy(gpu->cublas(), gpu->Upload(x, dtype), gpu->Upload(head, dtype),
                                  gpu->Upload(HostI32(std::vector<int32_t>(n, kIgnoreIndex), {n}), DType::kI32), 0.5f,
                                  &dx, &dhead, ws, 4, gpu->stream());
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->tokens, 0);
  EXPECT_EQ(got->sum, 0.0);
  const Tensor dx_host = gpu->ToHostF32(dx);
  for (int64_t i = 0; i < dx_host.numel(); ++i) ASSERT_EQ(dx_host.data<float>()[i], 0.0f) << "dx element " << i;
  const ErrorReport r = Compare(gpu->ToHostF32(dhead), prefill);
  EXPECT_EQ(r.rel, 0.0) << "dhead must be left as it was: " << r.ToString();
}

TEST_P(CudaLmHeadLoss, TargetOutOfRangeIsInvalidArgumentNamingTheRow) {
  const DType dtype = GetParam();
  BATON_GPU_OR_SKIP(gpu, dtype);
  std::mt19937 rng(63);
  const int64_t n = 9, h = 16, vocab = 100;
  std::vector<int32_t> ids = {1, 2, kIgnoreIndex, 3, 4, 100, 5, -7, 6};
  Tensor ws = Workspace(*gpu, 4, n, vocab, dtype);
  StatusOr<LossSum> got = cuda::RunLmHeadCrossEntropy(gpu->cublas(), gpu->Upload(RandomHost(rng, {n, h}, dtype), dtype),
                                                      gpu->Upload(RandomHost(rng, {vocab, h}, dtype), dtype),
                                                      gpu->Upload(HostI32(ids, {n}), DType::kI32), 1.0f, nullptr,
                                                      nullptr, ws, 4, gpu->stream());
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(got.status().message().find("targets[5] = 100"), std::string::npos) << got.status().ToString();
}

INSTANTIATE_TEST_SUITE_P(F32AndBF16, CudaLmHeadLoss, ::testing::Values(DType::kF32, DType::kBF16), DTypeParamName);

// Argument checks return before any device work, so GPU-labelled views of
// host memory (never dereferenced) exercise them on a machine without a GPU.
TEST(CudaLmHeadLossArgs, BadShapesDTypesAndWorkspaceAreInvalidArgument) {
  std::vector<float> mem(1 << 16);
  auto dev = [&](const Shape& shape, DType dtype) {
    return Tensor::View(nullptr, mem.data(), shape, dtype, Device::kCuda);
  };
  const int64_t n = 8, h = 16, vocab = 64;
  Tensor x = dev({n, h}, DType::kBF16), head = dev({vocab, h}, DType::kBF16), targets = dev({n}, DType::kI32);
  Tensor dx = dev({n, h}, DType::kBF16), dhead = dev({vocab, h}, DType::kF32);
  const size_t need = cuda::LmHeadLossWorkspaceBytes(4, vocab, DType::kBF16);
  ASSERT_GE(need, static_cast<size_t>(4 * vocab * 4)) << "an F32 logits chunk at least";
  Tensor ws = dev({static_cast<int64_t>(need)}, DType::kI8);
  Tensor small_ws = dev({static_cast<int64_t>(need) - 1}, DType::kI8);

  auto run = [&](const Tensor& xx, const Tensor& hh, const Tensor& tt, Tensor* ddx, Tensor* ddh, Tensor& w,
                 int64_t chunk) {
    return cuda::RunLmHeadCrossEntropy(nullptr, xx, hh, tt, 1.0f, ddx, ddh, w, chunk, nullptr).status();
  };
  auto expect_invalid = [](const Status& s, const std::string& mentions) {
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
    EXPECT_NE(s.message().find(mentions), std::string::npos) << s.ToString();
  };
  Tensor head_f32 = dev({vocab, h}, DType::kF32), head_wide = dev({vocab, h + 1}, DType::kBF16);
  Tensor targets_short = dev({n - 1}, DType::kI32), targets_f32 = dev({n}, DType::kF32);
  Tensor dx_f32 = dev({n, h}, DType::kF32), dhead_bf16 = dev({vocab, h}, DType::kBF16);
  Tensor host_x = Tensor::Empty({n, h}, DType::kBF16);
  expect_invalid(run(x, head_wide, targets, &dx, &dhead, ws, 4), "head [V, H]");
  expect_invalid(run(x, head_f32, targets, &dx, &dhead, ws, 4), "share x's dtype");
  expect_invalid(run(x, head, targets_short, &dx, &dhead, ws, 4), "targets must be [N = 8] I32");
  expect_invalid(run(x, head, targets_f32, &dx, &dhead, ws, 4), "targets must be [N = 8] I32");
  expect_invalid(run(x, head, targets, &dx, nullptr, ws, 4), "both be given");
  expect_invalid(run(x, head, targets, nullptr, &dhead, ws, 4), "both be given");
  expect_invalid(run(x, head, targets, &dx_f32, &dhead, ws, 4), "dx must be [N, H] of x's dtype");
  expect_invalid(run(x, head, targets, &dx, &dhead_bf16, ws, 4), "dhead_f32 must be F32 [V, H]");
  expect_invalid(run(host_x, head, targets, &dx, &dhead, ws, 4), "must live on the GPU");
  expect_invalid(run(x, head, targets, &dx, &dhead, ws, 0), "chunk_rows must be positive");
  expect_invalid(run(x, head, targets, &dx, &dhead, small_ws, 4), "workspace");
  // chunk_rows past N needs N rows: more than ws (4 rows) holds.
  expect_invalid(run(x, head, targets, &dx, &dhead, ws, 1000), "workspace");
  Tensor empty_x = dev({0, h}, DType::kBF16), empty_t = dev({0}, DType::kI32), empty_dx = dev({0, h}, DType::kBF16);
  StatusOr<LossSum> none =
      cuda::RunLmHeadCrossEntropy(nullptr, empty_x, head, empty_t, 1.0f, &empty_dx, &dhead, small_ws, 4, nullptr);
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_EQ(none->tokens, 0);
  EXPECT_EQ(none->sum, 0.0);
}

}  // namespace
}  // namespace baton::testing
