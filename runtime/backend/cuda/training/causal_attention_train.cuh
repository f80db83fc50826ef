// Causal self-attention for training on the device, as runtime/training/
// causal_attention.h defines it: each sequence is a contiguous run of rows
// of qkv (positions 0.. within it), GQA (query heads [g*G, g*G+G) use kv
// head g), an optional sliding window, scores scaled by shape.scale. The
// forward writes out [N, q] (the compute dtype) and lse [N, heads] (F32, the
// per-row log-sum-exp of the scaled scores); the backward recomputes the
// probabilities from lse and overwrites dqkv [N, q + 2 kv].
//
// The matmuls run on cuBLAS tensor cores (strided batched GEMMs, fp32
// accumulation) over score matrices materialised in a caller-owned
// workspace. Q and dO are first copied group-major ([kv head][token][the
// group's G heads][head_dim]), so that the G query heads sharing a kv head
// form one matrix and one GEMM (batched over kv heads) serves the whole
// group, dK and dV included (their sum over the group is the GEMM's own
// reduction). Query rows go in blocks of 512 and a block's GEMMs cover only
// the keys up to its last row (from its first row's window start), so
// about half of the masked upper triangle is never computed; masked
// entries inside a block are zeroed by the row kernels. Scores are
// float32; the probabilities and their gradients are rounded to the
// compute dtype before the GEMMs that read them (as FlashAttention does
// for its MMAs). Scores of as many (query block, kv head) pairs as the
// workspace holds are live at once: the launchers loop over such chunks.
//
// BF16/F16 with head_dim 64 or 128 (FlashAttentionSupported) take the fused
// FlashAttention-2 kernels of flash_attention_train.cuh instead: no scores
// in memory, a much smaller workspace (dQ in F32 and D), sliding windows
// included; the cuBLAS path above serves F32 and other head dims. In the
// fused backward dQ is summed with fp32 atomics, so its last bits may
// differ between runs (dK, dV and the forward are deterministic).
//
// Host-side: the launchers loop over sequences and chunks and return once
// the work is queued on `stream` (no synchronisation). The cuBLAS handle is
// used on `stream` (its own stream is restored afterwards); its math mode
// decides TF32 for F32 tensors (CudaBackend's keeps it off).
// Header is C++17-clean: .cu files include it.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <vector>

#include "runtime/backend/backend.h"
#include "runtime/core/status.h"
#include "runtime/core/tensor.h"

namespace baton::cuda {

// Bytes of score / score-gradient buffers the workspace holds by default
// (the chunk is sized to it); a chunk is never less than one query block of
// one kv head.
inline constexpr size_t kCausalAttentionScoreBudget = size_t{512} << 20;

// Workspace both launchers need for these sequences, with the chunk sized
// to `score_budget` (tests pass a small one to force chunking). For a
// sequence of L tokens, with ld = L rounded up to 8, B = min(512, L) rows a
// query block, nb = ceil(L / 512) blocks, G = heads / kv heads, q = heads *
// head_dim, kv = kv heads * head_dim, e = bytes of `dtype`, and
// round(x) = x rounded up to 256:
//   acc(L)   = round(2 * L * kv * 4)               dK/dV float32 accumulators
//   copy(L)  = round(L * q * e)                    one group-major copy (Q, dO, dQ: 3)
//   unit(L)  = 2 * B * G * ld * 4                  scores + score gradients of one
//                                                  query block of one kv head
//   units(L) = clamp(score_budget / unit(L), 1, nb * kv heads), rounded down
//              to a multiple of kv heads when at least kv heads
//   bytes(L) = acc(L) + 3 * copy(L) + units(L) * unit(L)
// and the answer is the maximum over the sequences (0 when all are empty).
// When FlashAttentionSupported(dtype, shape) holds the answer is instead
// FlashAttentionWorkspaceBytes(seq_starts, shape) (score_budget unused);
// such a workspace also needs qkv to meet the fused kernels' alignment
// (rows a multiple of 8 elements, 16-byte aligned), else the launchers fall
// back to the cuBLAS path and report the workspace as too small.
// The forward needs less (2 * copy(L) + unit(L) / 2 at the least). A larger
// workspace is used whole (fewer, bigger chunks).
size_t CausalAttentionWorkspaceBytes(const std::vector<int>& seq_starts, const AttentionShape& shape, DType dtype,
                                     size_t score_budget = kCausalAttentionScoreBudget);

// qkv [N, W] with W >= q + 2 kv (q = heads * head_dim, kv = kv heads *
// head_dim), after rope; seq_starts: S + 1 nondecreasing row offsets in
// [0, N]. out [N, q] in qkv's dtype (F32, BF16 or F16), lse [N, heads] F32;
// rows outside every sequence are left as they are. workspace: any dtype,
// 16-byte aligned, at least CausalAttentionWorkspaceBytes(seq_starts, shape,
// dtype, 1) bytes.
Status RunCausalAttentionForward(cublasHandle_t handle, const Tensor& qkv, const std::vector<int>& seq_starts,
                                 const AttentionShape& shape, Tensor& out, Tensor& lse, Tensor& workspace,
                                 cudaStream_t stream);

// out, lse: the forward's; dout [N, q]; dqkv [N, W] in qkv's dtype is
// overwritten with the gradient of qkv (zeros where nothing flows: columns
// past q + 2 kv, rows outside every sequence).
Status RunCausalAttentionBackward(cublasHandle_t handle, const Tensor& qkv, const Tensor& out, const Tensor& lse,
                                  const Tensor& dout, const std::vector<int>& seq_starts, const AttentionShape& shape,
                                  Tensor& dqkv, Tensor& workspace, cudaStream_t stream);

}  // namespace baton::cuda
