#include "runtime/model/model_weights.h"

#include <algorithm>
#include <cstring>

#include "runtime/model/weight_names.h"

namespace baton {
namespace {

Tensor Transpose2D(const Tensor& t) {
  const int64_t rows = t.dim(0), cols = t.dim(1);
  Tensor out = Tensor::Empty({cols, rows}, DType::kF32);
  const float* src = t.data<float>();
  float* dst = out.data<float>();
  constexpr int64_t kTile = 32;  // cache-friendly tiles: these matrices are large
  for (int64_t r0 = 0; r0 < rows; r0 += kTile) {
    for (int64_t c0 = 0; c0 < cols; c0 += kTile) {
      for (int64_t r = r0; r < std::min(rows, r0 + kTile); ++r) {
        for (int64_t c = c0; c < std::min(cols, c0 + kTile); ++c) dst[c * rows + r] = src[r * cols + c];
      }
    }
  }
  return out;
}

// Parts of one dtype (any), stacked along dimension 0 on the host.
Tensor ConcatRows(const std::vector<Tensor>& parts) {
  int64_t rows = 0;
  for (const Tensor& p : parts) rows += p.dim(0);
  Shape shape = parts[0].shape();
  shape[0] = rows;
  Tensor out = Tensor::Empty(shape, parts[0].dtype());
  char* dst = static_cast<char*>(out.raw());
  for (const Tensor& p : parts) {
    std::memcpy(dst, p.raw(), p.nbytes());
    dst += p.nbytes();
  }
  return out;
}

// Reads tensors from the checkpoint, reshapes them into Baton's layout and
// hands them to the backend, counting bytes for the progress line. Tensors
// that need no transpose go to the backend in their stored dtype, straight
// from the mapped file: the backend converts (a bf16 checkpoint reaches a
// bf16 GPU as its own bytes, with no float32 copy on the host).
class WeightLoader {
 public:
  WeightLoader(const Checkpoint& ckpt, const ModelConfig& config, Backend& backend, const LoadProgress& progress)
      : ckpt_(ckpt), config_(config), backend_(backend), progress_(progress) {}

  void set_total(size_t total) { total_ = total; }

  StatusOr<Tensor> Host(const std::string& name, const Shape& shape) {
    BATON_ASSIGN_OR_RETURN(Tensor t, ckpt_.GetF32(name, shape));
    Count(name);
    return t;
  }

  // The tensor as stored (a view of the file) when it has the expected
  // shape and a float dtype; otherwise GetF32's error.
  StatusOr<Tensor> Stored(const std::string& name, const Shape& shape) {
    BATON_ASSIGN_OR_RETURN(Tensor t, ckpt_.Get(name));
    if (t.shape() != shape || !IsFloatDType(t.dtype())) return Host(name, shape);
    Count(name);
    return t;
  }

  // A linear weight as [out, in], whatever the checkpoint's orientation.
  StatusOr<Tensor> HostLinear(const std::string& name, int64_t out, int64_t in) {
    if (!StoresWeightsInOut(config_)) return Stored(name, {out, in});
    BATON_ASSIGN_OR_RETURN(Tensor t, Host(name, {in, out}));
    return Transpose2D(t);
  }

  Tensor Device(const Tensor& host) {
    Tensor t = backend_.Upload(host, backend_.compute_dtype());
    resident_ += t.nbytes();
    return t;
  }

  StatusOr<Tensor> Load(const std::string& name, const Shape& shape) {
    BATON_ASSIGN_OR_RETURN(Tensor t, Stored(name, shape));
    return Device(t);
  }
  StatusOr<Tensor> LoadLinear(const std::string& name, int64_t out, int64_t in) {
    BATON_ASSIGN_OR_RETURN(Tensor t, HostLinear(name, out, in));
    return Device(t);
  }
  // Rows of several tensors stacked into one device tensor (fused q|k|v, gate|up).
  StatusOr<Tensor> LoadStacked(const std::vector<std::pair<std::string, Shape>>& parts, bool linear) {
    std::vector<Tensor> host;
    for (const auto& [name, shape] : parts) {
      if (linear) {
        BATON_ASSIGN_OR_RETURN(Tensor t, HostLinear(name, shape[0], shape[1]));
        host.push_back(t);
      } else {
        BATON_ASSIGN_OR_RETURN(Tensor t, Stored(name, shape));
        host.push_back(t);
      }
    }
    const bool one_dtype =
        std::all_of(host.begin(), host.end(), [&](const Tensor& t) { return t.dtype() == host[0].dtype(); });
    if (!one_dtype) {  // parts stored in different dtypes meet in float32
      for (Tensor& t : host) t = t.ToF32();
    }
    return Device(ConcatRows(host));
  }

  size_t resident() const { return resident_; }

 private:
  void Count(const std::string& name) {
    auto view = ckpt_.Get(name);
    if (view.ok()) done_ += view->nbytes();
    if (progress_) progress_(done_, total_);
  }

  const Checkpoint& ckpt_;
  const ModelConfig& config_;
  Backend& backend_;
  const LoadProgress& progress_;
  size_t done_ = 0, total_ = 0, resident_ = 0;
};

StatusOr<LayerWeights> LoadLayer(WeightLoader& loader, const ModelConfig& c, int layer) {
  const LayerTensorNames n = LayerNames(c, layer);
  const int64_t h = c.hidden_size, q = c.q_size(), kv = c.kv_size(), f = c.intermediate_size;
  LayerWeights w;
  BATON_ASSIGN_OR_RETURN(w.attn_norm_w, loader.Load(n.attn_norm, {h}));
  BATON_ASSIGN_OR_RETURN(w.mlp_norm_w, loader.Load(n.mlp_norm, {h}));
  if (c.norm == NormKind::kLayerNorm) {
    BATON_ASSIGN_OR_RETURN(w.attn_norm_b, loader.Load(n.attn_norm_bias, {h}));
    BATON_ASSIGN_OR_RETURN(w.mlp_norm_b, loader.Load(n.mlp_norm_bias, {h}));
  }
  if (!n.fused_qkv.empty()) {
    BATON_ASSIGN_OR_RETURN(w.qkv_w, loader.LoadLinear(n.fused_qkv, q + 2 * kv, h));
    if (c.qkv_bias) {
      BATON_ASSIGN_OR_RETURN(w.qkv_b, loader.Load(n.fused_qkv_bias, {q + 2 * kv}));
    }
  } else {
    BATON_ASSIGN_OR_RETURN(w.qkv_w, loader.LoadStacked({{n.q, {q, h}}, {n.k, {kv, h}}, {n.v, {kv, h}}}, true));
    if (c.qkv_bias) {
      BATON_ASSIGN_OR_RETURN(w.qkv_b, loader.LoadStacked({{n.q_bias, {q}}, {n.k_bias, {kv}}, {n.v_bias, {kv}}}, false));
    }
  }
  BATON_ASSIGN_OR_RETURN(w.o_w, loader.LoadLinear(n.o, h, q));
  if (c.o_bias) {
    BATON_ASSIGN_OR_RETURN(w.o_b, loader.Load(n.o_bias, {h}));
  }
  if (c.mlp == MlpKind::kSwiGlu) {
    BATON_ASSIGN_OR_RETURN(w.up_w, loader.LoadStacked({{n.gate, {f, h}}, {n.up, {f, h}}}, true));
    if (c.mlp_bias) {
      BATON_ASSIGN_OR_RETURN(w.up_b, loader.LoadStacked({{n.gate_bias, {f}}, {n.up_bias, {f}}}, false));
    }
  } else {
    BATON_ASSIGN_OR_RETURN(w.up_w, loader.LoadLinear(n.up, f, h));
    if (c.mlp_bias) {
      BATON_ASSIGN_OR_RETURN(w.up_b, loader.Load(n.up_bias, {f}));
    }
  }
  BATON_ASSIGN_OR_RETURN(w.down_w, loader.LoadLinear(n.down, h, f));
  if (c.mlp_bias) {
    BATON_ASSIGN_OR_RETURN(w.down_b, loader.Load(n.down_bias, {h}));
  }
  return w;
}

// Names of every tensor the stage will read, for the progress total.
std::vector<std::string> StageTensorNames(const ModelConfig& c, const StageRange& range) {
  const ModelTensorNames m = ModelNames(c);
  std::vector<std::string> names;
  if (range.has_embedding() || (range.has_head(c) && c.tie_word_embeddings)) names.push_back(m.embed);
  if (range.has_embedding() && !m.pos_embed.empty()) names.push_back(m.pos_embed);
  if (range.has_head(c) && !c.tie_word_embeddings) names.push_back(m.lm_head);
  for (int l = range.first_layer; l < range.last_layer; ++l) {
    const LayerTensorNames n = LayerNames(c, l);
    for (const std::string* s : {&n.fused_qkv, &n.q, &n.k, &n.v, &n.o, &n.up, &n.gate, &n.down}) {
      if (!s->empty()) names.push_back(*s);
    }
  }
  return names;
}

}  // namespace

StatusOr<StageWeights> LoadStageWeights(const Checkpoint& checkpoint, const ModelConfig& c, const StageRange& range,
                                        Backend& backend, const LoadProgress& progress) {
  if (range.first_layer < 0 || range.last_layer > c.num_layers || range.first_layer >= range.last_layer) {
    return Status::InvalidArgument("stage layer range [" + std::to_string(range.first_layer) + ", " +
                                   std::to_string(range.last_layer) + ") is not inside the model's " +
                                   std::to_string(c.num_layers) + " layers");
  }
  WeightLoader loader(checkpoint, c, backend, progress);
  size_t total = 0;
  for (const std::string& name : StageTensorNames(c, range)) {
    auto view = checkpoint.Get(name);
    if (view.ok()) total += view->nbytes();
  }
  loader.set_total(total);

  const ModelTensorNames m = ModelNames(c);
  const int64_t h = c.hidden_size, vocab = c.vocab_size;
  StageWeights w;
  w.range = range;
  if (range.has_embedding() || (range.has_head(c) && c.tie_word_embeddings)) {
    BATON_ASSIGN_OR_RETURN(w.embed, loader.Load(m.embed, {vocab, h}));
  }
  if (range.has_embedding() && c.positions == PositionKind::kLearned) {
    BATON_ASSIGN_OR_RETURN(w.pos_embed, loader.Load(m.pos_embed, {c.max_positions, h}));
  }
  for (int l = range.first_layer; l < range.last_layer; ++l) {
    auto layer = LoadLayer(loader, c, l);
    if (!layer.ok()) return layer.status();
    w.layers.push_back(std::move(layer).value());
  }
  if (range.has_head(c)) {
    BATON_ASSIGN_OR_RETURN(w.final_norm_w, loader.Load(m.final_norm, {h}));
    if (c.norm == NormKind::kLayerNorm) {
      BATON_ASSIGN_OR_RETURN(w.final_norm_b, loader.Load(m.final_norm_bias, {h}));
    }
    if (c.tie_word_embeddings) {
      w.lm_head = w.embed;
    } else {
      BATON_ASSIGN_OR_RETURN(w.lm_head, loader.LoadLinear(m.lm_head, vocab, h));
    }
  }
  w.bytes = loader.resident();
  return w;
}

void PackLinearWeights(StageWeights& weights, Backend& backend) {
  for (LayerWeights& l : weights.layers) {
    for (Tensor* t : {&l.qkv_w, &l.o_w, &l.up_w, &l.down_w}) backend.PackLinearWeight(*t);
  }
  if (!weights.lm_head.defined() || weights.lm_head.numel() == 0) return;
  const bool tied = weights.lm_head.raw() == weights.embed.raw();
  backend.PackLinearWeight(weights.lm_head);
  if (tied) weights.embed = weights.lm_head;
}

}  // namespace baton
