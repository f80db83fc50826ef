// How a model's layers are split into P contiguous pipeline stages.
//
// The balance is by estimated cost per token, in multiply-adds: each
// layer's matmuls and attention projections, plus the LM head on the last
// stage (with a 128k vocabulary it weighs as much as several layers) and the
// embedding lookup on the first. The split minimises the most expensive
// stage, which is what bounds pipeline throughput.
#pragma once

#include <vector>

#include "runtime/model/model_config.h"
#include "runtime/model/model_weights.h"

namespace baton {

// Multiply-adds per token of one layer, of the LM head and of the embedding.
double LayerCost(const ModelConfig& config);
double HeadCost(const ModelConfig& config);
double EmbeddingCost(const ModelConfig& config);

// Balanced contiguous ranges for `num_stages` stages. `layers_per_stage`, when
// not empty, overrides the balance (e.g. {6, 10}); it must have one positive
// entry per stage summing to the layer count. Errors name the numbers.
StatusOr<std::vector<StageRange>> PartitionLayers(const ModelConfig& config, int num_stages,
                                                  const std::vector<int>& layers_per_stage = {});

}  // namespace baton
