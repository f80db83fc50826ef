// Which parameter units (param_unit.h) a pipeline stage's weights form, in
// forward order. The same function names the units on the rank that trains
// them and on rank 0 when it assembles the whole model, so both agree on
// every unit's tensors and their order.
#pragma once

#include <string>
#include <vector>

#include "runtime/model/model_config.h"
#include "runtime/model/model_weights.h"

namespace baton {

enum class UnitRole { kEmbedding, kPositions, kLayer, kFinalNorm, kLmHead };

struct UnitFields {
  std::string name;  // "embed", "pos_embed", "layers.3", "final_norm", "lm_head"
  UnitRole role;
  int layer = -1;  // kLayer: the model's layer index
  // kLmHead on a last stage that is not the first, with tied embeddings:
  // a copy of stage 0's embedding, kept equal by summing the two copies'
  // gradients (Megatron's way of tying across stages).
  bool tied_copy = false;
  std::vector<Tensor*> params, grads;
};

// The units of the stage `range` covers. `w` holds the parameters (its
// layers are those of `range`), `g` is the gradient StageWeights of the same
// structure, whose fields the units bind. With tied embeddings on a stage
// that has both ends, the head reads the embedding unit and has no unit.
std::vector<UnitFields> StageUnits(const ModelConfig& config, const StageRange& range, StageWeights& w,
                                   StageWeights& g);

}  // namespace baton
