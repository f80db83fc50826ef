// Maps tensors in Baton's layout (StageWeights: fused q|k|v and gate|up,
// linear weights [out, in]) back to Hugging Face names and stored shapes:
// un-fused, and GPT-2's Conv1D weights transposed back to [in, out]. Used for
// parameters (export) and gradients (checking them against transformers)
// alike, since both share the layout.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "runtime/model/model_weights.h"

namespace baton {

// Every tensor as (HF name, float32 host tensor), in a fixed order. With
// tied embeddings the head is not listed (its values are the embedding's).
// Returned tensors are copies (transposed ones) or row views (un-fused ones).
std::vector<std::pair<std::string, Tensor>> ToHfTensors(const ModelConfig& config, const StageWeights& weights);

}  // namespace baton
