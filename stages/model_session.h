// ModelSession: a model folder opened for generation on one rank: its
// config, tokenizer, generation defaults, a backend, the whole model as one
// Stage, and the KV block manager. What the CLI (and tests) start from.
#pragma once

#include <memory>
#include <string>

#include "runtime/backend/backend.h"
#include "runtime/kv/kv_block_manager.h"
#include "runtime/model/model_config.h"
#include "runtime/sampling/sampling_params.h"
#include "runtime/tokenizer/tokenizer.h"
#include "stages/local_runner.h"
#include "stages/stage.h"

namespace baton {

struct SessionOptions {
  std::string model_dir;
  size_t kv_cache_bytes = size_t{512} << 20;  // capacity of the paged KV cache
  int block_size = KvBlockManager::kDefaultBlockSize;
  int threads = 0;  // CPU threads for BLAS/OpenMP; 0 = library default
  bool show_progress = false;
};

class ModelSession {
 public:
  static StatusOr<std::unique_ptr<ModelSession>> Open(const SessionOptions& options);

  const ModelConfig& config() const { return config_; }
  // Null when the folder has no tokenizer.json (token ids still work).
  const Tokenizer* tokenizer() const { return tokenizer_.get(); }
  // Sampling defaults from generation_config.json, as transformers applies
  // them: greedy unless it says do_sample.
  const SamplingParams& default_sampling() const { return default_sampling_; }
  Stage& stage() { return *stage_; }
  ModelRunner& runner() { return *runner_; }
  KvBlockManager& blocks() { return *blocks_; }

 private:
  ModelSession() = default;

  ModelConfig config_;
  std::unique_ptr<Tokenizer> tokenizer_;
  SamplingParams default_sampling_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<Stage> stage_;
  std::unique_ptr<LocalRunner> runner_;
  std::unique_ptr<KvBlockManager> blocks_;
};

}  // namespace baton
