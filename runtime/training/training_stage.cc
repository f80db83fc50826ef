#include "runtime/training/training_stage.h"

#include <algorithm>
#include <cstring>

#include "runtime/model/transformer_layer.h"

namespace baton {

TrainingStage::TrainingStage(const ModelConfig& config, StageWeights weights, ShardMode mode, Communicator* dp,
                             bool activation_checkpointing, TrainingOps& ops)
    : ops_(ops),
      config_(config),
      weights_(std::move(weights)),
      constants_(config_, ops.backend()),
      checkpointing_(activation_checkpointing) {
  grads_.range = weights_.range;
  const bool head_reads_embedding = config_.tie_word_embeddings && is_first() && is_last();
  if (head_reads_embedding) weights_.lm_head = Tensor();  // the head reads the embedding unit
  fields_ = StageUnits(config_, weights_.range, weights_, grads_);
  for (size_t i = 0; i < fields_.size(); ++i) {
    const UnitFields& f = fields_[i];
    units_.push_back(std::make_unique<ParamUnit>(f.name, f.params, f.grads, mode, dp, ops_));
    switch (f.role) {
      case UnitRole::kEmbedding:
        embed_ = units_.back().get();
        if (head_reads_embedding) head_unit_ = i;
        break;
      case UnitRole::kPositions:
        pos_unit_ = i;
        break;
      case UnitRole::kLayer:
        layer_units_.push_back(i);
        break;
      case UnitRole::kFinalNorm:
        norm_unit_ = i;
        break;
      case UnitRole::kLmHead:
        head_unit_ = i;
        if (f.tied_copy) tied_copy_ = units_.back().get();
        break;
    }
  }
  for (size_t i = 0; i < units_.size(); ++i) {
    if (fields_[i].role != UnitRole::kLmHead) forward_order_.push_back(i);
  }
  // A head that reads the embedding unit is not "next" after anything: it
  // is gathered again, without a prefetch.
  if (head_unit_ != SIZE_MAX && units_[head_unit_].get() != embed_) forward_order_.push_back(head_unit_);
}

Status TrainingStage::Use(size_t i, bool forward, bool prefetch) {
  ParamUnit& unit = *units_[i];
  BATON_RETURN_IF_ERROR(unit.Gather());
  if (unit.mode() == ShardMode::kSharded) {
    gathered_bytes_ += unit.full_bytes();
    peak_gathered_bytes_ = std::max(peak_gathered_bytes_, gathered_bytes_);
  }
  // Prefetch the unit used next. Forward: embedding, positions, layers,
  // final norm, head; backward: the layers in reverse (the embedding's
  // backward needs no values). Never past the last one, so no gather is
  // left in flight across an optimizer step.
  if (!prefetch) return Status::Ok();
  const std::vector<size_t>& order = forward ? forward_order_ : layer_units_;
  auto at = std::find(order.begin(), order.end(), i);
  if (at == order.end()) return Status::Ok();
  if (forward && at + 1 != order.end()) return units_[*(at + 1)]->StartGather();
  if (!forward && at != order.begin()) return units_[*(at - 1)]->StartGather();
  return Status::Ok();
}

void TrainingStage::Done(size_t i) {
  ParamUnit& unit = *units_[i];
  if (unit.mode() == ShardMode::kSharded) gathered_bytes_ -= unit.full_bytes();
  unit.Release();
}

void TrainingStage::Track(MicroBatch& state, const Tensor& t) {
  state.bytes += t.nbytes();
  activation_bytes_ += t.nbytes();
  peak_activation_bytes_ = std::max(peak_activation_bytes_, activation_bytes_);
}

StatusOr<Tensor> TrainingStage::Forward(int mb, const BatchLayout& batch, const Tensor& input, bool train,
                                        float grad_scale, LossSum* loss) {
  if (train && live_.count(mb) != 0) {
    return Status::Internal("training stage: micro-batch " + std::to_string(mb) + " is already in flight");
  }
  const int64_t n = batch.rows, h = config_.hidden_size;
  MicroBatch state;
  state.batch = batch;
  Tensor hidden;
  if (is_first()) {
    BATON_RETURN_IF_ERROR(Use(0, true));
    hidden = ops_.Activations(n, h);
    ops_.backend().Embedding(batch.ids, weights_.embed, hidden);
    Done(0);
    if (pos_unit_ != SIZE_MAX) {
      BATON_RETURN_IF_ERROR(Use(pos_unit_, true));
      ops_.backend().AddEmbedding(batch.positions, weights_.pos_embed, hidden);
      Done(pos_unit_);
    }
  } else {
    if (input.numel() != n * h) {
      return Status::Internal("training stage: the previous stage sent " + input.DebugString() + ", expected [" +
                              std::to_string(n) + ", " + std::to_string(h) + "]");
    }
    hidden = input;
  }
  state.layers.resize(layer_units_.size());
  for (size_t l = 0; l < layer_units_.size(); ++l) {
    BATON_RETURN_IF_ERROR(Use(layer_units_[l], true));
    Tensor out;
    LayerActivations* keep = train && !checkpointing_ ? &state.layers[l] : nullptr;
    LayerForward(ops_, constants_, batch, weights_.layers[l], hidden, out, keep);
    Done(layer_units_[l]);
    if (train && checkpointing_) state.layers[l].x_in = hidden;
    if (train) {
      state.bytes += state.layers[l].bytes();
      activation_bytes_ += state.layers[l].bytes();
      peak_activation_bytes_ = std::max(peak_activation_bytes_, activation_bytes_);
    }
    hidden = std::move(out);
  }
  if (is_last()) {
    BATON_ASSIGN_OR_RETURN(Tensor none, HeadForward(state, hidden, train, grad_scale, loss));
    hidden = std::move(none);
  }
  if (train) live_[mb] = std::move(state);
  return hidden;
}

StatusOr<Tensor> TrainingStage::HeadForward(MicroBatch& state, const Tensor& hidden, bool train, float grad_scale,
                                            LossSum* loss) {
  const int64_t n = state.batch.rows, h = config_.hidden_size;
  BATON_RETURN_IF_ERROR(Use(norm_unit_, true));
  Tensor normed = ops_.Activations(n, h);
  ApplyNorm(ops_.backend(), config_, hidden, weights_.final_norm_w, weights_.final_norm_b, normed);
  const bool tied_here = embed_ != nullptr && units_[head_unit_].get() == embed_;
  BATON_RETURN_IF_ERROR(Use(head_unit_, true, !tied_here));
  const Tensor& head = tied_here ? weights_.embed : weights_.lm_head;
  if (!train) {
    BATON_ASSIGN_OR_RETURN(const LossSum part,
                           ops_.LmHeadCrossEntropy(normed, head, state.batch.targets, 0.0f, nullptr, nullptr));
    loss->sum += part.sum;
    loss->tokens += part.tokens;
    Done(head_unit_);
    Done(norm_unit_);
    return Tensor();
  }
  units_[head_unit_]->BeginGrad();
  units_[norm_unit_]->BeginGrad();
  Tensor dnormed = ops_.Activations(n, h);
  Tensor& dhead = tied_here ? grads_.embed : grads_.lm_head;
  BATON_ASSIGN_OR_RETURN(const LossSum part,
                         ops_.LmHeadCrossEntropy(normed, head, state.batch.targets, grad_scale, &dnormed, &dhead));
  loss->sum += part.sum;
  loss->tokens += part.tokens;
  state.d_hidden = ops_.Activations(n, h);
  ops_.NormBackward(constants_.norm, hidden, weights_.final_norm_w, config_.norm_eps, dnormed, state.d_hidden,
                    grads_.final_norm_w, constants_.norm == NormOp::kLayerNorm ? &grads_.final_norm_b : nullptr);
  Track(state, state.d_hidden);
  BATON_RETURN_IF_ERROR(units_[head_unit_]->EndGrad());
  BATON_RETURN_IF_ERROR(units_[norm_unit_]->EndGrad());
  Done(head_unit_);
  Done(norm_unit_);
  return Tensor();
}

StatusOr<Tensor> TrainingStage::Backward(int mb, const Tensor& d_output) {
  auto it = live_.find(mb);
  if (it == live_.end()) {
    return Status::Internal("training stage: backward of micro-batch " + std::to_string(mb) + " without its forward");
  }
  MicroBatch& state = it->second;
  const BatchLayout& batch = state.batch;
  if (!is_last() && d_output.numel() != batch.rows * config_.hidden_size) {
    return Status::Internal("training stage: the next stage sent the gradient " + d_output.DebugString());
  }
  // Backward overwrites d layer by layer; the caller's buffer stays intact.
  Tensor d = state.d_hidden;
  if (!is_last()) {
    d = ops_.Activations(batch.rows, config_.hidden_size);
    ops_.Copy(d_output, d);
  }
  for (size_t l = layer_units_.size(); l-- > 0;) {
    const size_t u = layer_units_[l];
    BATON_RETURN_IF_ERROR(Use(u, false));
    LayerActivations& acts = state.layers[l];
    if (checkpointing_) {  // recompute the layer from its kept input
      Tensor unused;
      const Tensor x = acts.x_in;
      LayerForward(ops_, constants_, batch, weights_.layers[l], x, unused, &acts);
    }
    units_[u]->BeginGrad();
    LayerBackward(ops_, constants_, batch, weights_.layers[l], grads_.layers[l], acts, d);
    BATON_RETURN_IF_ERROR(units_[u]->EndGrad());
    Done(u);
  }
  if (is_first()) {
    embed_->BeginGrad();
    ops_.EmbeddingBackward(batch.ids, d, grads_.embed);
    BATON_RETURN_IF_ERROR(embed_->EndGrad());
    if (pos_unit_ != SIZE_MAX) {
      units_[pos_unit_]->BeginGrad();
      ops_.EmbeddingBackward(batch.positions, d, grads_.pos_embed);
      BATON_RETURN_IF_ERROR(units_[pos_unit_]->EndGrad());
    }
    d = Tensor();
  }
  activation_bytes_ -= state.bytes;
  live_.erase(it);
  return d;
}

}  // namespace baton
