// The weights one pipeline stage holds, in the layout the layer code wants:
// every linear weight [out, in] in the backend's compute dtype, q/k/v fused
// into one matrix and gate/up into another (one matmul each), GPT-2's Conv1D
// weights transposed. Converted once, at load; each stage reads only the
// tensors of its own layers (plus embedding and/or head where it has them).
#pragma once

#include <functional>
#include <vector>

#include "runtime/backend/backend.h"
#include "runtime/checkpoint/checkpoint.h"
#include "runtime/model/model_config.h"

namespace baton {

struct LayerWeights {
  Tensor attn_norm_w, attn_norm_b;  // b undefined for RMSNorm
  Tensor qkv_w, qkv_b;              // [q + 2 kv, hidden]; b undefined without qkv bias
  Tensor o_w, o_b;                  // [hidden, q]
  Tensor mlp_norm_w, mlp_norm_b;
  Tensor up_w, up_b;      // GPT-2: fc [ffn, hidden]; SwiGLU: gate|up [2 ffn, hidden]
  Tensor down_w, down_b;  // [hidden, ffn]
};

// Which part of the model a stage holds: layers [first_layer, last_layer),
// the embedding when first_layer == 0, the final norm and LM head when
// last_layer == num_layers.
struct StageRange {
  int first_layer = 0;
  int last_layer = 0;
  bool has_embedding() const { return first_layer == 0; }
  bool has_head(const ModelConfig& c) const { return last_layer == c.num_layers; }
};

struct StageWeights {
  StageRange range;
  Tensor embed;      // [vocab, hidden]: first stage, and a last stage with tied embeddings
  Tensor pos_embed;  // [max_positions, hidden]: GPT-2 first stage
  Tensor final_norm_w, final_norm_b;
  Tensor lm_head;  // [vocab, hidden]: the last stage (shares `embed` when tied)
  std::vector<LayerWeights> layers;
  size_t bytes = 0;  // resident bytes of everything above (tied tensors once)
};

// Called with (bytes loaded so far, bytes to load in all).
using LoadProgress = std::function<void(size_t done, size_t total)>;

StatusOr<StageWeights> LoadStageWeights(const Checkpoint& checkpoint, const ModelConfig& config,
                                        const StageRange& range, Backend& backend,
                                        const LoadProgress& progress = nullptr);

// Lays out the stage's linear weights for the backend's matmuls
// (Backend::PackLinearWeight): for inference only, as training updates its
// weights in place. A tied LM head packs the embedding table it shares.
void PackLinearWeights(StageWeights& weights, Backend& backend);

}  // namespace baton
