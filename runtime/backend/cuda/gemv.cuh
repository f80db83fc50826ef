// y = x . w^T (+ bias) for a few rows of x (decode: one row per sequence),
// 16-bit storage, fp32 accumulation. At M = 1 cuBLAS's kernels read a
// small weight matrix (the 1B shape's 8-67 MB projections) at 1.1-2.5 TB/s
// of the H100's ~3; this one streams each weight row once with 16-byte
// loads, several in flight a lane, and reaches copy speed from a few MB up.
//
// It also fuses what surrounds a decode-step projection (Backend::
// FusedLinear): an RMSNorm of x (each warp reads all of x anyway, so it
// sums the squares on the way and scales its dot products by the rstd at
// the end), and a SwiGLU or residual-add epilogue. Each saves a kernel of
// ~3 us a layer, which at batch 1 costs as much as reading a 10 MB weight.
#pragma once

#include <cuda_runtime_api.h>

#include "runtime/backend/backend.h"
#include "runtime/core/tensor.h"

namespace baton::cuda {

constexpr int64_t kGemvMaxRows = 4;

// Whether LaunchGemv takes this product: M <= kGemvMaxRows, BF16 or F16,
// K a multiple of 8 and x, w 16-byte aligned.
bool GemvApplies(const Tensor& x, const Tensor& w);

struct GemvFusion {
  const Tensor* rms_weight = nullptr;  // x is RMS-normed with this [K] weight first; null: not normed
  float rms_eps = 0.0f;
  LinearEpilogue epilogue = LinearEpilogue::kStore;
};

// x [M, K], w [N, K] (kSwiGlu: [2F, K]), bias [N] or undefined, y [M, N]
// (kSwiGlu: [M, F]; kAccumulate: y += the product, rounded as the
// separate ops round it). Plain products are checked by the caller
// (RunLinear); fused ones here.
void LaunchGemv(const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& y, cudaStream_t stream,
                const GemvFusion& fusion = {});

}  // namespace baton::cuda
