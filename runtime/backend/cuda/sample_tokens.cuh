// Token sampling on the GPU: one token per logits row, the one the host
// Sampler (runtime/sampling/sampler.h) picks from the same row with the same
// uniform draw. Only the ids go back to the host.
//
// Same operations in the same order and rounding: repetition penalty and
// temperature (IEEE divisions), argmax (lowest id on ties), top-k threshold
// (k-th largest, counting equal values), weights with the host's
// ExpNonPositive evaluated operation for operation (no FMA contraction),
// top-p by the host's distance-below-max bins, min-p, then the inverse-CDF
// walk over the surviving candidates in the host's own order: id order, or
// after top-p the order libstdc++'s two-pointer std::partition leaves them
// in (the bins above the cut, holes filled from the right) followed by the
// cut bin's kept tokens by rank. Sums of double weights are taken in
// another order than the host's, so a pick can differ only where the draw
// lands within double rounding of a CDF step.
//
// A row whose cut bin holds more than 256 candidates (where the host
// Sampler's order comes from std::nth_element) is answered kSampleOnHost.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>

#include "runtime/backend/backend.h"
#include "runtime/backend/cuda/step_host_io.h"
#include "runtime/core/tensor.h"

namespace baton::cuda {

// Bytes of device scratch LaunchSampleTokens needs for `rows` x `vocab`.
size_t SampleTokensWorkspaceBytes(int64_t rows, int64_t vocab);

// logits [rows, vocab] (F32/F16/BF16, device); rows / context / tokens are
// device arrays (SampleRow per row, the histories, one int32 per row).
void LaunchSampleTokens(const Tensor& logits, const SampleRow* rows, const int32_t* context, void* workspace,
                        int32_t* tokens, cudaStream_t stream);

// Every row greedy (temperature 0) with no repetition penalty: the host's
// ArgMax of each raw row (lowest id among the largest, NaN never wins, 0
// when nothing is above -inf), without scratch.
// With `landings` (a step's, step_host_io.h) the ids also land there.
void LaunchGreedyTokens(const Tensor& logits, int32_t* tokens, cudaStream_t stream,
                        const StepTokenLandings& landings = {});

}  // namespace baton::cuda
