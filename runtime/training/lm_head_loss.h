// The LM head and mean next-token cross-entropy, fused and chunked over
// rows so the full [tokens, vocab] logits/probabilities are never held:
// each chunk of rows computes its logits, turns them into d(loss)/d(logits)
// in place, and feeds that to the head's two backward matmuls.
#pragma once

#include <cstdint>

#include "runtime/core/tensor.h"

namespace baton {

inline constexpr int32_t kIgnoreIndex = -100;  // transformers' ignore_index

struct LossSum {
  double sum = 0;      // sum of the per-token losses
  int64_t tokens = 0;  // targets that counted (not kIgnoreIndex)
  double mean() const { return tokens > 0 ? sum / static_cast<double>(tokens) : 0.0; }
};

// x [N, H] (final-norm output), head [V, H], targets [N] I32 (already
// shifted: the id row i must predict, or kIgnoreIndex). With dx defined,
// dx [N, H] is overwritten and dhead [V, H] accumulates, both the gradient
// of grad_scale * sum(loss) (grad_scale = 1 / tokens of the whole optimizer
// step gives the mean). chunk_rows bounds the rows of logits alive at once.
LossSum LmHeadCrossEntropy(const Tensor& x, const Tensor& head, const Tensor& targets, float grad_scale, Tensor* dx,
                           Tensor* dhead, int64_t chunk_rows = 64);

}  // namespace baton
