// One transformer layer, configured by ModelConfig (pre-norm attention with
// fused qkv, rotary or no position rotation, GQA over the paged KV cache,
// then a pre-norm gelu or SwiGLU MLP, each with a residual add). The same
// code runs a prefill, a decode step or a mixed ragged batch.
#pragma once

#include <vector>

#include "runtime/kv/paged_kv_cache.h"
#include "runtime/model/activation_buffers.h"
#include "runtime/model/model_weights.h"
#include "runtime/model/step_plan.h"

namespace baton {

struct LayerContext {
  Backend& backend;
  const ModelConfig& config;
  const DeviceStepPlan& plan;
  const AttentionShape& attention;
  const Tensor& rope_inv_freq;  // undefined for learned positions
  ActivationBuffers& buffers;
};

// Runs `layers` in order; hidden [N, hidden_size] is updated in place and
// the K/V of the new tokens go to the cache's layers 0, 1, ...
void TransformerLayersForward(const LayerContext& ctx, const std::vector<LayerWeights>& layers, Tensor& hidden,
                              PagedKvCache& cache);

// Applies the model's norm (LayerNorm or RMSNorm) with the given weights.
void ApplyNorm(Backend& backend, const ModelConfig& config, const Tensor& x, const Tensor& weight, const Tensor& bias,
               Tensor& y);
// The model's norm (weights `weight`, `bias`) as the prologue of a
// Backend::FusedLinear, with the given epilogue. Holds the addresses of
// weight and bias.
LinearStep NormThenLinear(const ModelConfig& config, const Tensor& weight, const Tensor& bias, LinearEpilogue epilogue);
// residual += x, then normed = the model's norm of residual, in one op
// (Backend::AddNorm; on the CPU bit-identical to AddInPlace + ApplyNorm).
void ApplyAddNorm(Backend& backend, const ModelConfig& config, const Tensor& x, Tensor& residual, const Tensor& weight,
                  const Tensor& bias, Tensor& normed);

}  // namespace baton
