// Rotary position embedding (rotate-half, as transformers' Llama), in place
// over the q and k head slices at the front of each (possibly fused qkv) row.
#pragma once

#include <cuda_runtime_api.h>

#include "runtime/backend/backend.h"
#include "runtime/core/tensor.h"

namespace baton::cuda {

// positions: I32 [N]; inv_freq: F32 [head_dim / 2].
void LaunchRope(Tensor& qkv, const Tensor& positions, const Tensor& inv_freq, int num_heads, int num_kv_heads,
                int head_dim, cudaStream_t stream);
// Its gradient (training): the rotation by the opposite angle, in place on
// the q and k columns of dqkv [N, width]; v's columns are untouched.
void LaunchRopeBackward(Tensor& dqkv, const Tensor& positions, const Tensor& inv_freq, int num_heads, int num_kv_heads,
                        int head_dim, cudaStream_t stream);

// LaunchRope, then the rotated K and V of each token to the paged cache at
// batch.slot_mapping (LaunchStoreKv's contract), in one kernel.
void LaunchRopeStoreKv(Tensor& qkv, const Tensor& positions, const Tensor& inv_freq, const PagedAttentionBatch& batch,
                       const AttentionShape& shape, Tensor& cache_k, Tensor& cache_v, cudaStream_t stream);

}  // namespace baton::cuda
