// RunCausalAttentionForward / RunCausalAttentionBackward (runtime/backend/
// cuda/training/causal_attention_train.cuh) against the CPU reference
// (runtime/training/causal_attention.h) on the same dtype-rounded inputs:
// single sequences of 1, 7, 64, 300, 1100 and 1300 tokens (several 512-row
// query blocks), ragged batches, GQA 4:1, 2:1 and MHA, head_dim 64 and 128,
// sliding windows (inside one query block and across blocks), workspaces
// small enough to force chunks of one kv head, of part of the kv heads, and
// of one or two query blocks, and
// a batch whose sequences leave rows and qkv columns uncovered (dqkv must
// be zero there, out/lse untouched). Outputs and the workspace are poisoned
// first, and the backward runs twice to catch races: bit-identical in F32
// (the cuBLAS path); BF16/F16 take the fused kernels (flash_attention_train.cuh),
// whose dK/dV must be bit-identical and whose dQ (fp32 atomics, order-
// dependent last bits) must agree within the dtype's tolerance.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "runtime/backend/cuda/training/causal_attention_train.cuh"
#include "runtime/training/causal_attention.h"
#include "tests/gpu/gpu_test_util.h"

namespace baton::testing {
namespace {

struct Case {
  std::string name;
  int heads, kv_heads, head_dim, window;
  std::vector<int> lens;
  // Score budget for the workspace in (query block, kv head) units (0: the
  // default budget), to force chunking.
  int budget_units = 0;
  int lead_rows = 0, trail_rows = 0, extra_cols = 0;  // rows/columns outside every sequence
};

std::vector<Case> Cases() {
  return {
      {"len1_gqa4_d64", 8, 2, 64, 0, {1}},
      {"len7_mha_d64", 4, 4, 64, 0, {7}},
      {"len64_gqa4_d128", 8, 2, 128, 0, {64}},
      {"len300_gqa4_d64", 8, 2, 64, 0, {300}},
      {"len300_mha_d128", 4, 4, 128, 0, {300}},
      {"ragged3_gqa4_d128", 8, 2, 128, 0, {45, 1, 130}},
      {"window40_len300_gqa4_d64", 8, 2, 64, 40, {300}},
      {"blocks_len1100_gqa2_d64", 4, 2, 64, 0, {1100, 3}},
      {"blocks_window600_len1300_gqa4_d64", 4, 1, 64, 600, {1300}},
      // Chunks of one kv head, of 3 of 4 kv heads, of one and of two query
      // blocks (with every kv head).
      {"chunk_one_unit_ragged", 8, 2, 64, 0, {300, 17, 0, 5}, 1},
      {"chunk_partial_kv_heads", 12, 4, 64, 0, {200}, 3},
      {"chunk_one_block_window600_len1300", 4, 1, 64, 600, {1300}, 1},
      {"chunk_two_blocks_len1100_d128", 8, 2, 128, 0, {1100, 70}, 4},
      {"uncovered_rows_wide_qkv", 8, 2, 64, 0, {20, 33}, 0, 3, 2, 16},
  };
}

AttentionShape ShapeOf(const Case& c) {
  AttentionShape s;
  s.num_heads = c.heads;
  s.num_kv_heads = c.kv_heads;
  s.head_dim = c.head_dim;
  s.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  s.sliding_window = c.window;
  return s;
}

// Columns [begin, end) of a host F32 matrix, as a new [rows, end - begin] tensor.
Tensor Columns(const Tensor& t, int64_t rows_begin, int64_t rows_end, int64_t begin, int64_t end) {
  Tensor r = Tensor::Empty({rows_end - rows_begin, end - begin}, DType::kF32);
  for (int64_t i = rows_begin; i < rows_end; ++i) {
    std::memcpy(r.data<float>() + (i - rows_begin) * (end - begin), t.data<float>() + i * t.dim(1) + begin,
                (end - begin) * sizeof(float));
  }
  return r;
}

// A device workspace of `bytes`, every byte 0xFF (NaN in F32/BF16/F16):
// the launchers must not rely on anything in it.
Tensor PoisonedWorkspace(CudaBackend& gpu, size_t bytes) {
  Tensor ws = gpu.Allocate({static_cast<int64_t>(bytes)}, DType::kI8);
  EXPECT_EQ(cudaMemsetAsync(ws.raw(), 0xFF, bytes, gpu.stream()), cudaSuccess);
  return ws;
}

size_t WorkspaceFor(const Case& c, const std::vector<int>& starts, const AttentionShape& shape, DType dtype) {
  if (c.budget_units == 0) return cuda::CausalAttentionWorkspaceBytes(starts, shape, dtype);
  int max_len = 0;
  for (int len : c.lens) max_len = std::max(max_len, len);
  const size_t ld = (static_cast<size_t>(max_len) + 7) / 8 * 8;
  const size_t rows = std::min(512, max_len), group = c.heads / c.kv_heads;
  const size_t unit = 2 * rows * group * ld * 4;  // the header's unit(L)
  return cuda::CausalAttentionWorkspaceBytes(starts, shape, dtype, c.budget_units * unit);
}

int64_t CountNan(const Tensor& t) {
  int64_t nan = 0;
  for (int64_t i = 0; i < t.numel(); ++i) nan += std::isnan(t.data<float>()[i]);
  return nan;
}

void ExpectZero(const Tensor& t, const char* what) {
  int64_t nonzero = 0;
  for (int64_t i = 0; i < t.numel(); ++i) nonzero += t.data<float>()[i] != 0.0f;
  EXPECT_EQ(nonzero, 0) << what << " must be zero outside the sequences";
}

class CausalAttentionTrain : public ::testing::TestWithParam<DType> {};

TEST_P(CausalAttentionTrain, ForwardAndBackwardMatchCpuReference) {
  const DType dtype = GetParam();
  BATON_GPU_OR_SKIP(gpu, dtype);
  std::mt19937 rng(7);
  for (const Case& c : Cases()) {
    SCOPED_TRACE(c.name);
    const AttentionShape shape = ShapeOf(c);
    std::vector<int> starts = {c.lead_rows};
    for (int len : c.lens) starts.push_back(starts.back() + len);
    const int64_t n = starts.back() + c.trail_rows;
    const int64_t q_cols = int64_t{c.heads} * c.head_dim, kv_cols = int64_t{c.kv_heads} * c.head_dim;
    const int64_t width = q_cols + 2 * kv_cols + c.extra_cols;
    // q and k in [-2, 2): peaked softmax rows in places, not uniform.
    const Tensor qkv = RandomHost(rng, {n, width}, dtype, -2.0f, 2.0f);
    const Tensor dout = RandomHost(rng, {n, q_cols}, dtype);

    Tensor ref_out = Tensor::Zeros({n, q_cols}, DType::kF32), ref_lse = Tensor::Zeros({n, c.heads}, DType::kF32);
    CausalAttentionForward(qkv, starts, shape, ref_out, ref_lse);
    // The backward of both sides reads the reference forward, rounded as
    // the GPU forward would store it.
    const Tensor out_t = dtype == DType::kF32 ? ref_out : ref_out.ToDType(dtype).ToF32();
    Tensor ref_dqkv = Tensor::Empty({n, width}, DType::kF32);
    CausalAttentionBackward(qkv, out_t, ref_lse, dout, starts, shape, ref_dqkv);

    Tensor workspace = PoisonedWorkspace(*gpu, WorkspaceFor(c, starts, shape, dtype));
    const Tensor d_qkv = gpu->Upload(qkv, dtype);
    Tensor d_out = Poisoned(*gpu, {n, q_cols}, dtype);
    Tensor d_lse = Poisoned(*gpu, {n, c.heads}, DType::kF32);
    Status st =
        cuda::RunCausalAttentionForward(gpu->cublas(), d_qkv, starts, shape, d_out, d_lse, workspace, gpu->stream());
    ASSERT_TRUE(st.ok()) << st.ToString();
    const Tensor got_out = gpu->ToHostF32(d_out), got_lse = gpu->ToHostF32(d_lse);
    const int64_t r0 = starts.front(), r1 = starts.back();
    BATON_EXPECT_CLOSE(Columns(got_out, r0, r1, 0, q_cols), Columns(ref_out, r0, r1, 0, q_cols), dtype,
                       "out " + c.name);
    // lse comes from float32 scores of the same rounded inputs in every dtype.
    BATON_EXPECT_CLOSE(Columns(got_lse, r0, r1, 0, c.heads), Columns(ref_lse, r0, r1, 0, c.heads), DType::kF32,
                       "lse " + c.name);
    // Rows outside every sequence keep their poison.
    for (const Tensor& outside : {Columns(got_out, 0, r0, 0, q_cols), Columns(got_out, r1, n, 0, q_cols),
                                  Columns(got_lse, 0, r0, 0, c.heads), Columns(got_lse, r1, n, 0, c.heads)}) {
      EXPECT_EQ(CountNan(outside), outside.numel()) << "out/lse rows outside the sequences were written";
    }

    const Tensor b_out = gpu->Upload(out_t, dtype), b_lse = gpu->Upload(ref_lse, DType::kF32);
    const Tensor b_dout = gpu->Upload(dout, dtype);
    Tensor dqkv[2];
    for (Tensor& d : dqkv) {
      d = Poisoned(*gpu, {n, width}, dtype);
      st = cuda::RunCausalAttentionBackward(gpu->cublas(), d_qkv, b_out, b_lse, b_dout, starts, shape, d, workspace,
                                            gpu->stream());
      ASSERT_TRUE(st.ok()) << st.ToString();
    }
    const Tensor got = gpu->ToHostF32(dqkv[0]), again = gpu->ToHostF32(dqkv[1]);
    const int64_t k_begin = q_cols, v_begin = q_cols + kv_cols, v_end = q_cols + 2 * kv_cols;
    if (dtype == DType::kF32) {
      EXPECT_EQ(std::memcmp(got.raw(), again.raw(), got.nbytes()), 0) << "two backward runs differ: a race";
    } else {
      const Tensor kv1 = Columns(got, 0, n, k_begin, width), kv2 = Columns(again, 0, n, k_begin, width);
      EXPECT_EQ(std::memcmp(kv1.raw(), kv2.raw(), kv1.nbytes()), 0) << "two backward runs differ in dK/dV: a race";
      BATON_EXPECT_CLOSE(Columns(again, r0, r1, 0, k_begin), Columns(got, r0, r1, 0, k_begin), dtype,
                         "dq rerun " + c.name);
    }
    BATON_EXPECT_CLOSE(Columns(got, r0, r1, 0, k_begin), Columns(ref_dqkv, r0, r1, 0, k_begin), dtype, "dq " + c.name);
    BATON_EXPECT_CLOSE(Columns(got, r0, r1, k_begin, v_begin), Columns(ref_dqkv, r0, r1, k_begin, v_begin), dtype,
                       "dk " + c.name);
    BATON_EXPECT_CLOSE(Columns(got, r0, r1, v_begin, v_end), Columns(ref_dqkv, r0, r1, v_begin, v_end), dtype,
                       "dv " + c.name);
    if (c.extra_cols > 0) ExpectZero(Columns(got, 0, n, v_end, width), "dqkv columns past q + 2 kv");
    ExpectZero(Columns(got, 0, r0, 0, width), "dqkv rows before the first sequence");
    ExpectZero(Columns(got, r1, n, 0, width), "dqkv rows after the last sequence");
  }
}

INSTANTIATE_TEST_SUITE_P(AllFloat, CausalAttentionTrain, ::testing::ValuesIn(TestedDTypes()), DTypeParamName);

TEST(CausalAttentionTrainArgs, RejectsBadShapesAndSmallWorkspaces) {
  BATON_GPU_OR_SKIP(gpu, DType::kBF16);
  AttentionShape shape;
  shape.num_heads = 6;
  shape.num_kv_heads = 4;  // not a divisor of 6
  shape.head_dim = 64;
  const std::vector<int> starts = {0, 10};
  Tensor qkv = gpu->Allocate({10, 14 * 64}, DType::kBF16);
  Tensor out = gpu->Allocate({10, 6 * 64}, DType::kBF16), lse = gpu->Allocate({10, 6}, DType::kF32);
  Tensor ws = gpu->Allocate({1 << 20}, DType::kI8);
  Status st = cuda::RunCausalAttentionForward(gpu->cublas(), qkv, starts, shape, out, lse, ws, gpu->stream());
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.ToString();
  EXPECT_NE(st.message().find("num_kv_heads"), std::string::npos) << st.ToString();

  shape.num_kv_heads = 2;
  Tensor qkv2 = gpu->Allocate({10, 10 * 64}, DType::kBF16);
  Tensor bad_lse = gpu->Allocate({10, 6}, DType::kBF16);
  st = cuda::RunCausalAttentionForward(gpu->cublas(), qkv2, starts, shape, out, bad_lse, ws, gpu->stream());
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.ToString();
  EXPECT_NE(st.message().find("lse"), std::string::npos) << st.ToString();

  const std::vector<int> bad_starts = {0, 11};
  st = cuda::RunCausalAttentionForward(gpu->cublas(), qkv2, bad_starts, shape, out, lse, ws, gpu->stream());
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.ToString();

  // Backward needs the fused kernels' dQ and D scratch (BF16, head_dim 64).
  const size_t need = cuda::CausalAttentionWorkspaceBytes(starts, shape, DType::kBF16, 1);
  Tensor small = gpu->Allocate({static_cast<int64_t>(need) - 1}, DType::kI8);
  Tensor dqkv = gpu->Allocate({10, 10 * 64}, DType::kBF16);
  st = cuda::RunCausalAttentionBackward(gpu->cublas(), qkv2, out, lse, out, starts, shape, dqkv, small, gpu->stream());
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.ToString();
  EXPECT_NE(st.message().find("workspace"), std::string::npos) << st.ToString();
  EXPECT_TRUE(gpu->Synchronize().ok());
}

// A measurement, not a check: bf16 forward and backward at training sizes
// (run with --gtest_also_run_disabled_tests). FLOPs count the causal half
// only: forward 2 GEMMs of 2 L^2 d / 2 each per head, backward 2.5x that.
TEST(CausalAttentionTrainTiming, DISABLED_Bf16TrainingShapes) {
  BATON_GPU_OR_SKIP(gpu, DType::kBF16);
  struct Shape3 {
    int seqs, len, heads, kv_heads, head_dim;
  };
  for (const Shape3& t : {Shape3{1, 2048, 32, 8, 128}, Shape3{4, 2048, 32, 8, 128}, Shape3{8, 2048, 32, 8, 64},
                          Shape3{1, 4096, 32, 8, 128}}) {
    AttentionShape shape;
    shape.num_heads = t.heads;
    shape.num_kv_heads = t.kv_heads;
    shape.head_dim = t.head_dim;
    shape.scale = 1.0f / std::sqrt(static_cast<float>(t.head_dim));
    std::vector<int> starts = {0};
    for (int s = 0; s < t.seqs; ++s) starts.push_back(starts.back() + t.len);
    const int64_t n = starts.back(), q_cols = int64_t{t.heads} * t.head_dim;
    const int64_t width = q_cols + 2 * int64_t{t.kv_heads} * t.head_dim;
    std::mt19937 rng(3);
    Tensor qkv = gpu->Upload(RandomHost(rng, {n, width}, DType::kBF16), DType::kBF16);
    Tensor dout = gpu->Upload(RandomHost(rng, {n, q_cols}, DType::kBF16), DType::kBF16);
    Tensor out = gpu->Allocate({n, q_cols}, DType::kBF16), lse = gpu->Allocate({n, t.heads}, DType::kF32);
    Tensor dqkv = gpu->Allocate({n, width}, DType::kBF16);
    const size_t bytes = cuda::CausalAttentionWorkspaceBytes(starts, shape, DType::kBF16);
    Tensor ws = gpu->Allocate({static_cast<int64_t>(bytes)}, DType::kI8);
    cudaEvent_t ev[3];
    for (cudaEvent_t& e : ev) ASSERT_EQ(cudaEventCreate(&e), cudaSuccess);
    const int reps = 10;
    float fwd_ms = 0, bwd_ms = 0;
    for (int rep = -3; rep < reps; ++rep) {
      ASSERT_EQ(cudaEventRecord(ev[0], gpu->stream()), cudaSuccess);
      ASSERT_TRUE(cuda::RunCausalAttentionForward(gpu->cublas(), qkv, starts, shape, out, lse, ws, gpu->stream()).ok());
      ASSERT_EQ(cudaEventRecord(ev[1], gpu->stream()), cudaSuccess);
      ASSERT_TRUE(
          cuda::RunCausalAttentionBackward(gpu->cublas(), qkv, out, lse, dout, starts, shape, dqkv, ws, gpu->stream())
              .ok());
      ASSERT_EQ(cudaEventRecord(ev[2], gpu->stream()), cudaSuccess);
      ASSERT_EQ(cudaEventSynchronize(ev[2]), cudaSuccess);
      float f = 0, b = 0;
      cudaEventElapsedTime(&f, ev[0], ev[1]);
      cudaEventElapsedTime(&b, ev[1], ev[2]);
      if (rep >= 0) {
        fwd_ms += f / reps;
        bwd_ms += b / reps;
      }
    }
    for (cudaEvent_t& e : ev) cudaEventDestroy(e);
    const double fwd_flop = 2.0 * t.seqs * t.heads * (2.0 * t.len * t.len * t.head_dim) / 2.0;
    std::printf(
        "  [timing] seqs=%d len=%d heads=%d kv=%d d=%d workspace=%.0f MiB: fwd %.3f ms (%.1f TFLOP/s), "
        "bwd %.3f ms (%.1f TFLOP/s)\n",
        t.seqs, t.len, t.heads, t.kv_heads, t.head_dim, bytes / 1048576.0, fwd_ms, fwd_flop / fwd_ms / 1e9, bwd_ms,
        2.5 * fwd_flop / bwd_ms / 1e9);
  }
}

}  // namespace
}  // namespace baton::testing
