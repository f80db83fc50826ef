// The LM head and next-token cross-entropy on the GPU, chunked over rows
// like the CPU reference (runtime/training/lm_head_loss.h, whose math this
// reproduces): per chunk, F32 logits = x . head^T (cuBLAS), one block per
// row turns them into grad_scale * (softmax - onehot(target)) in T, then
// dx_chunk = dlogits . head and dhead += dlogits^T . x_chunk. The full
// [N, vocab] logits never exist; the loss sum and token count accumulate on
// the device and come back once, at the end of the call.
// Header is C++17-clean: .cu files include it.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "runtime/core/status.h"
#include "runtime/core/tensor.h"
#include "runtime/training/lm_head_loss.h"

namespace baton::cuda {

// Device bytes RunLmHeadCrossEntropy needs for `chunk_rows` rows of a
// `vocab`-wide head in compute dtype `dtype`: a small accumulator plus one
// F32 logits chunk. The T gradient is written over the F32 logits in place,
// so today the size does not depend on `dtype` (128256 x 1024 rows: 525 MB).
size_t LmHeadLossWorkspaceBytes(int64_t chunk_rows, int64_t vocab, DType dtype);

// x [N, H] and head [V, H] in one float dtype T (F32/BF16/F16), targets [N]
// I32 (already shifted; kIgnoreIndex rows count for nothing), all on the
// GPU. With dx [N, H] (T) and dhead_f32 [V, H] (F32) given, dx is
// overwritten and dhead_f32 ACCUMULATES (beta = 1), both the gradient of
// grad_scale * sum(loss); with both null (or undefined) only the loss is
// computed (evaluation). `workspace` is any GPU tensor of at least
// LmHeadLossWorkspaceBytes(min(chunk_rows, N), V, T) bytes, 16-byte
// aligned; its contents are scratch. `handle` must be bound to `stream`.
// Synchronises `stream` once, to return the loss. A target outside
// [0, V) that is not kIgnoreIndex is InvalidArgument naming the row (that
// row is then treated as ignored, and dx/dhead hold the other rows' work).
StatusOr<LossSum> RunLmHeadCrossEntropy(cublasHandle_t handle, const Tensor& x, const Tensor& head,
                                        const Tensor& targets, float grad_scale, Tensor* dx, Tensor* dhead_f32,
                                        Tensor& workspace, int64_t chunk_rows, cudaStream_t stream);

}  // namespace baton::cuda
