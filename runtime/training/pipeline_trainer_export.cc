// PipelineTrainer: assembling the whole model on the root rank (export,
// tests) from every stage's units.
#include <cstring>

#include "runtime/backend/cpu/cpu_backend.h"
#include "runtime/checkpoint/checkpoint.h"
#include "runtime/training/hf_export.h"
#include "runtime/training/pipeline_trainer.h"

namespace baton {
namespace {

// The unit tag space starts above the activation tags of any step.
constexpr int kUnitTagBase = 1 << 14;

// A float32 copy of the whole model's structure, for the root to fill in.
StatusOr<StageWeights> WholeModelTemplate(const std::string& model_dir, const ModelConfig& config) {
  BATON_ASSIGN_OR_RETURN(Checkpoint checkpoint, Checkpoint::Open(model_dir));
  CpuBackend backend;
  BATON_ASSIGN_OR_RETURN(StageWeights w, LoadStageWeights(checkpoint, config, {0, config.num_layers}, backend));
  auto own_f32 = [](Tensor& t) {
    if (t.defined() && t.numel() > 0) t = t.ToF32();  // a private, writable copy
  };
  own_f32(w.embed);
  own_f32(w.pos_embed);
  own_f32(w.final_norm_w);
  own_f32(w.final_norm_b);
  for (LayerWeights& l : w.layers) {
    for (Tensor* t : {&l.attn_norm_w, &l.attn_norm_b, &l.qkv_w, &l.qkv_b, &l.o_w, &l.o_b, &l.mlp_norm_w, &l.mlp_norm_b,
                      &l.up_w, &l.up_b, &l.down_w, &l.down_b}) {
      own_f32(*t);
    }
  }
  w.lm_head = config.tie_word_embeddings ? w.embed : w.lm_head.ToF32();
  return w;
}

// The part of the whole model `range` covers, sharing its storage.
StageWeights StageView(const StageWeights& whole, const StageRange& range) {
  StageWeights v = whole;
  v.range = range;
  v.layers.assign(whole.layers.begin() + range.first_layer, whole.layers.begin() + range.last_layer);
  return v;
}

void Scatter(const Tensor& flat, const std::vector<Tensor*>& fields) {
  int64_t offset = 0;
  for (Tensor* t : fields) {
    std::memcpy(t->raw(), flat.data<float>() + offset, t->nbytes());
    offset += t->numel();
  }
}

}  // namespace

StatusOr<std::optional<StageWeights>> PipelineTrainer::GatherModel(bool grads) {
  // 1. Every stage assembles its units within its dp group.
  std::vector<Tensor> full;
  for (auto& unit : stage_->units()) {
    StatusOr<Tensor> t = grads ? unit->FullGrads() : unit->FullValues();
    BATON_RETURN_IF_ERROR(t.status());
    full.push_back(std::move(t).value());
  }
  if (dp_rank() != 0) return std::optional<StageWeights>();
  const auto& fields = stage_->unit_fields();
  // 2. Replica 0's stages send theirs to the root (stage 0).
  if (pipeline_rank() != 0) {
    for (size_t i = 0; i < full.size(); ++i) {
      if (fields[i].tied_copy) continue;
      BATON_RETURN_IF_ERROR(pipeline_->Send(full[i], 0, kUnitTagBase + static_cast<int>(i)));
    }
    return std::optional<StageWeights>();
  }
  BATON_ASSIGN_OR_RETURN(StageWeights whole, WholeModelTemplate(model_dir_, config_));
  for (size_t s = 0; s < stages_.size(); ++s) {
    StageWeights view = StageView(whole, stages_[s]);
    StageWeights unused;
    std::vector<UnitFields> units = StageUnits(config_, stages_[s], view, unused);
    for (size_t i = 0; i < units.size(); ++i) {
      if (units[i].tied_copy) continue;
      int64_t numel = 0;
      for (const Tensor* t : units[i].params) numel += t->numel();
      Tensor flat = s == 0 ? full[i] : Tensor::Empty({numel}, DType::kF32);
      if (s != 0) BATON_RETURN_IF_ERROR(pipeline_->Recv(flat, static_cast<int>(s), kUnitTagBase + static_cast<int>(i)));
      if (flat.numel() != numel) {
        return Status::Internal("gather: unit " + units[i].name + " has " + std::to_string(flat.numel()) +
                                " values, the model " + std::to_string(numel));
      }
      Scatter(flat, units[i].params);
    }
  }
  return std::optional<StageWeights>(std::move(whole));
}

Status PipelineTrainer::ExportHf(const std::string& out_dir) {
  BATON_ASSIGN_OR_RETURN(std::optional<StageWeights> whole, GatherModel(false));
  if (!whole.has_value()) return Status::Ok();
  return ExportHfModel(config_, *whole, model_dir_, out_dir);
}

}  // namespace baton
