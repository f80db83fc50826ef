#include "runtime/training/stage_units.h"

namespace baton {

std::vector<UnitFields> StageUnits(const ModelConfig& c, const StageRange& range, StageWeights& w, StageWeights& g) {
  std::vector<UnitFields> units;
  auto unit = [&](std::string name, UnitRole role, std::vector<std::pair<Tensor*, Tensor*>> fields) {
    UnitFields u{std::move(name), role, -1, false, {}, {}};
    for (auto [p, q] : fields) {
      if (!p->defined() || p->numel() == 0) continue;
      u.params.push_back(p);
      u.grads.push_back(q);
    }
    units.push_back(std::move(u));
    return &units.back();
  };
  g.layers.resize(w.layers.size());
  if (range.has_embedding()) {
    unit("embed", UnitRole::kEmbedding, {{&w.embed, &g.embed}});
    if (c.positions == PositionKind::kLearned) unit("pos_embed", UnitRole::kPositions, {{&w.pos_embed, &g.pos_embed}});
  }
  for (int l = range.first_layer; l < range.last_layer; ++l) {
    LayerWeights& p = w.layers[static_cast<size_t>(l - range.first_layer)];
    LayerWeights& q = g.layers[static_cast<size_t>(l - range.first_layer)];
    UnitFields* u = unit("layers." + std::to_string(l), UnitRole::kLayer,
                         {{&p.attn_norm_w, &q.attn_norm_w},
                          {&p.attn_norm_b, &q.attn_norm_b},
                          {&p.qkv_w, &q.qkv_w},
                          {&p.qkv_b, &q.qkv_b},
                          {&p.o_w, &q.o_w},
                          {&p.o_b, &q.o_b},
                          {&p.mlp_norm_w, &q.mlp_norm_w},
                          {&p.mlp_norm_b, &q.mlp_norm_b},
                          {&p.up_w, &q.up_w},
                          {&p.up_b, &q.up_b},
                          {&p.down_w, &q.down_w},
                          {&p.down_b, &q.down_b}});
    u->layer = l;
  }
  if (range.has_head(c)) {
    unit("final_norm", UnitRole::kFinalNorm, {{&w.final_norm_w, &g.final_norm_w}, {&w.final_norm_b, &g.final_norm_b}});
    if (!c.tie_word_embeddings) {
      unit("lm_head", UnitRole::kLmHead, {{&w.lm_head, &g.lm_head}});
    } else if (!range.has_embedding()) {
      unit("lm_head", UnitRole::kLmHead, {{&w.lm_head, &g.lm_head}})->tied_copy = true;
    }
  }
  return units;
}

}  // namespace baton
