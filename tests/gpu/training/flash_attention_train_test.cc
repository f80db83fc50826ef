// The fused BF16/F16 attention kernels (runtime/backend/cuda/training/
// flash_attention_train.cuh), reached through RunCausalAttentionForward /
// Backward, at training lengths the short cases of attention_train_test.cc
// do not reach: 2048 tokens (32 key blocks, GQA 4:1, head_dim 128), a
// ragged batch of 2048 + 777 tokens (partial last blocks, head_dim 64) and a
// sliding window of 300 over 2048 tokens, against the CPU reference on the
// same rounded inputs. Outputs are poisoned first; the forward must repeat
// bit for bit; the backward's dK/dV too, its dQ (fp32 atomics) within the
// dtype's tolerance. Also which calls take the fused path.
#include "runtime/backend/cuda/training/flash_attention_train.cuh"

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

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

struct LongCase {
  std::string name;
  int heads, kv_heads, head_dim, window;
  std::vector<int> lens;
};

AttentionShape ShapeOf(const LongCase& c) {
  AttentionShape s;
  s.num_heads = c.heads;
  s.num_kv_heads = c.kv_heads;
  s.head_dim = c.head_dim;
  s.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  s.sliding_window = c.window;
  return s;
}

// Columns [begin, end) of a host F32 matrix.
Tensor Cols(const Tensor& t, int64_t begin, int64_t end) {
  const int64_t rows = t.dim(0);
  Tensor r = Tensor::Empty({rows, end - begin}, DType::kF32);
  for (int64_t i = 0; i < rows; ++i) {
    std::memcpy(r.data<float>() + i * (end - begin), t.data<float>() + i * t.dim(1) + begin,
                (end - begin) * sizeof(float));
  }
  return r;
}

bool SameBits(const Tensor& a, const Tensor& b) {
  return a.nbytes() == b.nbytes() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

class FlashAttentionTrain : public ::testing::TestWithParam<DType> {};

TEST_P(FlashAttentionTrain, LongSequencesMatchCpuReference) {
  const DType dtype = GetParam();
  BATON_GPU_OR_SKIP(gpu, dtype);
  std::mt19937 rng(11);
  for (const LongCase& c : {LongCase{"len2048_gqa4_d128", 4, 1, 128, 0, {2048}},
                            LongCase{"ragged_2048_777_gqa2_d64", 4, 2, 64, 0, {2048, 777}},
                            LongCase{"window300_len2048_gqa2_d64", 4, 2, 64, 300, {2048}}}) {
    SCOPED_TRACE(c.name);
    const AttentionShape shape = ShapeOf(c);
    ASSERT_TRUE(cuda::FlashAttentionSupported(dtype, shape));
    std::vector<int> starts = {0};
    for (int len : c.lens) starts.push_back(starts.back() + len);
    const int64_t n = starts.back(), q_cols = int64_t{c.heads} * c.head_dim;
    const int64_t kv_cols = int64_t{c.kv_heads} * c.head_dim, width = q_cols + 2 * kv_cols;
    const Tensor qkv = RandomHost(rng, {n, width}, dtype, -2.0f, 2.0f);
    const Tensor dout = RandomHost(rng, {n, q_cols}, dtype);
    Tensor ref_out = Tensor::Zeros({n, q_cols}, DType::kF32), ref_lse = Tensor::Zeros({n, c.heads}, DType::kF32);
    CausalAttentionForward(qkv, starts, shape, ref_out, ref_lse);
    const Tensor out_t = ref_out.ToDType(dtype).ToF32();
    Tensor ref_dqkv = Tensor::Empty({n, width}, DType::kF32);
    CausalAttentionBackward(qkv, out_t, ref_lse, dout, starts, shape, ref_dqkv);

    const size_t bytes = cuda::CausalAttentionWorkspaceBytes(starts, shape, dtype);
    EXPECT_EQ(bytes, cuda::FlashAttentionWorkspaceBytes(starts, shape));
    Tensor ws = gpu->Allocate({static_cast<int64_t>(bytes)}, DType::kI8);
    ASSERT_EQ(cudaMemsetAsync(ws.raw(), 0xFF, bytes, gpu->stream()), cudaSuccess);
    const Tensor d_qkv = gpu->Upload(qkv, dtype);
    Tensor got_out[2], got_lse[2];
    for (int run = 0; run < 2; ++run) {
      Tensor d_out = Poisoned(*gpu, {n, q_cols}, dtype), d_lse = Poisoned(*gpu, {n, c.heads}, DType::kF32);
      const Status st =
          cuda::RunCausalAttentionForward(gpu->cublas(), d_qkv, starts, shape, d_out, d_lse, ws, gpu->stream());
      ASSERT_TRUE(st.ok()) << st.ToString();
      got_out[run] = gpu->ToHostF32(d_out);
      got_lse[run] = gpu->ToHostF32(d_lse);
    }
    BATON_EXPECT_CLOSE(got_out[0], ref_out, dtype, "out " + c.name);
    BATON_EXPECT_CLOSE(got_lse[0], ref_lse, DType::kF32, "lse " + c.name);
    EXPECT_TRUE(SameBits(got_out[0], got_out[1])) << "forward out differs between runs";
    EXPECT_TRUE(SameBits(got_lse[0], got_lse[1])) << "forward lse differs between runs";

    const Tensor b_out = gpu->Upload(out_t, dtype), b_lse = gpu->Upload(ref_lse, DType::kF32);
    const Tensor b_dout = gpu->Upload(dout, dtype);
    Tensor got[2];
    for (int run = 0; run < 2; ++run) {
      Tensor d = Poisoned(*gpu, {n, width}, dtype);
      const Status st = cuda::RunCausalAttentionBackward(gpu->cublas(), d_qkv, b_out, b_lse, b_dout, starts, shape, d,
                                                         ws, gpu->stream());
      ASSERT_TRUE(st.ok()) << st.ToString();
      got[run] = gpu->ToHostF32(d);
    }
    const int64_t k_begin = q_cols, v_begin = q_cols + kv_cols;
    BATON_EXPECT_CLOSE(Cols(got[0], 0, k_begin), Cols(ref_dqkv, 0, k_begin), dtype, "dq " + c.name);
    BATON_EXPECT_CLOSE(Cols(got[0], k_begin, v_begin), Cols(ref_dqkv, k_begin, v_begin), dtype, "dk " + c.name);
    BATON_EXPECT_CLOSE(Cols(got[0], v_begin, width), Cols(ref_dqkv, v_begin, width), dtype, "dv " + c.name);
    EXPECT_TRUE(SameBits(Cols(got[0], k_begin, width), Cols(got[1], k_begin, width)))
        << "dK/dV differ between runs: a race";
    BATON_EXPECT_CLOSE(Cols(got[1], 0, k_begin), Cols(got[0], 0, k_begin), dtype, "dq rerun " + c.name);
  }
}

INSTANTIATE_TEST_SUITE_P(Half, FlashAttentionTrain, ::testing::Values(DType::kBF16, DType::kF16), DTypeParamName);

TEST(FlashAttentionTrainDispatch, OnlyHalfTypesWithHeadDim64Or128) {
  AttentionShape s;
  s.num_heads = 8;
  s.num_kv_heads = 2;
  s.scale = 0.125f;
  for (int d : {64, 128}) {
    s.head_dim = d;
    EXPECT_TRUE(cuda::FlashAttentionSupported(DType::kBF16, s)) << d;
    EXPECT_TRUE(cuda::FlashAttentionSupported(DType::kF16, s)) << d;
    EXPECT_FALSE(cuda::FlashAttentionSupported(DType::kF32, s)) << d;
  }
  for (int d : {32, 80, 96, 256}) {
    s.head_dim = d;
    EXPECT_FALSE(cuda::FlashAttentionSupported(DType::kBF16, s)) << d;
  }
  // The workspace is the fused one (dQ and D in F32) exactly when fused.
  s.head_dim = 64;
  const std::vector<int> starts = {0, 100, 130};
  EXPECT_EQ(cuda::CausalAttentionWorkspaceBytes(starts, s, DType::kBF16),
            size_t{130 * 512 * 4 + 4352});  // D: 130 * 8 * 4 rounded up to 256
  EXPECT_NE(cuda::CausalAttentionWorkspaceBytes(starts, s, DType::kF32), cuda::FlashAttentionWorkspaceBytes(starts, s));
}

}  // namespace
}  // namespace baton::testing
