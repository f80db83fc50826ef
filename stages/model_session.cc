#include "stages/model_session.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "runtime/backend/cpu/cpu_backend.h"
#include "stages/local_runner.h"
#include "stages/pipeline_runner.h"
#include "stages/stage_partition.h"

namespace baton {
namespace {

// transformers' defaults when do_sample is set: temperature 1, top_k 50,
// top_p 1; plain greedy otherwise.
SamplingParams ReadGenerationDefaults(const std::filesystem::path& path) {
  SamplingParams p;
  p.temperature = 0.0f;
  std::ifstream in(path);
  if (!in) return p;
  nlohmann::json g = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (!g.is_object()) return p;
  auto number = [&](const char* key, float fallback) {
    return g.contains(key) && g[key].is_number() ? g[key].get<float>() : fallback;
  };
  if (g.contains("do_sample") && g["do_sample"].is_boolean() && g["do_sample"].get<bool>()) {
    p.temperature = number("temperature", 1.0f);
    p.top_k = static_cast<int>(number("top_k", 50.0f));
    p.top_p = number("top_p", 1.0f);
    p.min_p = number("min_p", 0.0f);
  }
  p.repetition_penalty = number("repetition_penalty", 1.0f);
  if (!p.Validate().ok()) return SamplingParams{};  // ignore a nonsensical file rather than fail every run
  return p;
}

}  // namespace

StatusOr<std::unique_ptr<ModelSession>> ModelSession::Open(const SessionOptions& options) {
  std::unique_ptr<ModelSession> s(new ModelSession());
  BATON_ASSIGN_OR_RETURN(s->config_, LoadModelConfig(options.model_dir));
  const std::filesystem::path dir(options.model_dir);
  if (std::filesystem::exists(dir / "tokenizer.json")) {
    BATON_ASSIGN_OR_RETURN(s->tokenizer_, Tokenizer::FromFile((dir / "tokenizer.json").string()));
  }
  s->default_sampling_ = ReadGenerationDefaults(dir / "generation_config.json");
  s->backend_ = std::make_unique<CpuBackend>(options.threads);

  KvCacheShape probe;
  probe.num_kv_heads = s->config_.num_kv_heads;
  probe.head_dim = s->config_.head_dim;
  const size_t per_block = probe.BytesPerTokenPerLayer(s->backend_->compute_dtype()) *
                           static_cast<size_t>(s->config_.num_layers) * static_cast<size_t>(options.block_size);
  const int num_blocks = static_cast<int>(std::min<size_t>(options.kv_cache_bytes / per_block, 1 << 24));
  if (num_blocks < 1) {
    return Status::InvalidArgument("KV cache of " + std::to_string(options.kv_cache_bytes) +
                                   " bytes holds no block (one block needs " + std::to_string(per_block) + ")");
  }
  // Every stage sizes its cache to the same number of blocks (the block ids
  // are shared); kv_cache_bytes is the capacity of the whole model's cache.
  const int num_stages = options.pipeline ? options.pipeline->size() : 1;
  const int stage_index = options.pipeline ? options.pipeline->rank() : 0;
  BATON_ASSIGN_OR_RETURN(auto ranges, PartitionLayers(s->config_, num_stages, options.layers_per_stage));
  StageOptions stage_options;
  stage_options.range = ranges[stage_index];
  stage_options.num_kv_blocks = num_blocks;
  stage_options.block_size = options.block_size;
  stage_options.show_progress = options.show_progress && stage_index == 0;
  BATON_ASSIGN_OR_RETURN(s->stage_, Stage::Load(options.model_dir, s->config_, stage_options, *s->backend_));
  if (options.trace) s->trace_ = std::make_unique<PipelineTrace>();
  if (num_stages == 1) {
    s->runner_ = std::make_unique<LocalRunner>(*s->stage_, s->trace_.get());
  } else if (stage_index == 0) {
    s->runner_ = std::make_unique<PipelineRunner>(*s->stage_, *options.pipeline, s->trace_.get());
  }
  s->pipeline_ = options.pipeline;
  s->blocks_ = std::make_unique<KvBlockManager>(num_blocks, options.block_size);
  return s;
}

ModelSession::~ModelSession() { (void)Shutdown(); }

Status ModelSession::RunWorker() {
  if (is_coordinator()) return Status::FailedPrecondition("rank 0 coordinates; it does not run a worker loop");
  return RunPipelineWorker(*stage_, *pipeline_, trace_.get());
}

StatusOr<PipelineUtilization> ModelSession::WriteTrace(const std::string& path, int micro_batches) {
  if (!trace_) return Status::FailedPrecondition("the session was opened without trace = true");
  BATON_RETURN_IF_ERROR(Shutdown());
  return GatherTrace(*trace_, pipeline_, micro_batches, path);
}

Status ModelSession::Shutdown() {
  auto* pipeline = dynamic_cast<PipelineRunner*>(runner_.get());
  return pipeline ? pipeline->Shutdown() : Status::Ok();
}

}  // namespace baton
