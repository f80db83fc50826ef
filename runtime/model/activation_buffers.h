// Scratch activations of one forward step, reused across layers and steps:
// each buffer grows to the largest token count seen and is then viewed at
// the current one, so steady-state decoding allocates nothing.
#pragma once

#include <algorithm>

#include "runtime/backend/backend.h"
#include "runtime/model/model_config.h"

namespace baton {

class ActivationBuffers {
 public:
  ActivationBuffers(Backend& backend, const ModelConfig& config) : backend_(backend), config_(config) {}

  // Views of `tokens` rows; contents are garbage until written.
  Tensor normed(int64_t tokens) { return View(normed_, tokens, config_.hidden_size); }
  Tensor qkv(int64_t tokens) { return View(qkv_, tokens, config_.q_size() + 2 * config_.kv_size()); }
  Tensor attn(int64_t tokens) { return View(attn_, tokens, config_.q_size()); }
  Tensor proj(int64_t tokens) { return View(proj_, tokens, config_.hidden_size); }
  Tensor up(int64_t tokens) { return View(up_, tokens, UpWidth()); }
  Tensor act(int64_t tokens) { return View(act_, tokens, config_.intermediate_size); }

 private:
  int64_t UpWidth() const {
    return config_.mlp == MlpKind::kSwiGlu ? 2 * config_.intermediate_size : config_.intermediate_size;
  }
  Tensor View(Tensor& buffer, int64_t tokens, int64_t width) {
    if (!buffer.defined() || buffer.numel() == 0 || buffer.dim(0) < tokens) {
      buffer = backend_.Allocate({std::max<int64_t>(tokens, 1), width}, backend_.compute_dtype());
    }
    return buffer.Rows(0, tokens);
  }

  Backend& backend_;
  const ModelConfig& config_;
  Tensor normed_, qkv_, attn_, proj_, up_, act_;
};

}  // namespace baton
