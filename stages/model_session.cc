#include "stages/model_session.h"

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <span>

#include "runtime/backend/cpu/cpu_backend.h"
#include "runtime/backend/cuda/make_cuda_backend.h"
#include "runtime/comm/nccl_factory.h"
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

StatusOr<std::unique_ptr<Backend>> MakeBackend(const SessionOptions& options) {
  if (options.device == Device::kCpu) {
    if (options.dtype != DType::kF32) {
      return Status::InvalidArgument(std::string("the CPU backend computes in F32 only (dtype ") +
                                     DTypeName(options.dtype) + " was asked for)");
    }
    return std::unique_ptr<Backend>(std::make_unique<CpuBackend>(options.threads));
  }
  return MakeCudaBackend(options.dtype, options.gpu_index);
}

// Blocks of the KV cache that fit in the GPU memory the weights left: the
// cache may fill `fraction` of the card minus what is already in use (the
// rest stays free for activations, cuBLAS and the attention workspace).
// Every layer's K and V pool is one allocation, rounded to the allocator's
// size class.
StatusOr<int> KvBlocksFromDeviceMemory(Backend& backend, const KvCacheShape& per_block, double fraction) {
  BATON_ASSIGN_OR_RETURN(DeviceMemory mem, CudaDeviceMemory(backend));
  const double reserve = (1.0 - fraction) * static_cast<double>(mem.total_bytes);
  const double budget = static_cast<double>(mem.free_bytes) - reserve;
  const size_t pool_block = per_block.BytesPerTokenPerLayer(backend.compute_dtype()) / 2 * per_block.block_size;
  const size_t pools = 2 * static_cast<size_t>(per_block.num_layers);
  auto fits = [&](int64_t blocks) {
    return static_cast<double>(pools * CudaAllocationBytes(static_cast<size_t>(blocks) * pool_block)) <= budget;
  };
  int64_t lo = 0, hi = budget > 0 ? static_cast<int64_t>(budget / static_cast<double>(pools * pool_block)) : 0;
  hi = std::min<int64_t>(hi, 1 << 24);
  while (lo < hi) {  // largest count that fits
    const int64_t mid = (lo + hi + 1) / 2;
    if (fits(mid)) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  if (lo < 1) {
    return Status::ResourceExhausted(
        "no room for a KV cache: after the weights the GPU has " + std::to_string(mem.free_bytes >> 20) + " of " +
        std::to_string(mem.total_bytes >> 20) + " MiB free, and --gpu-memory-fraction " + std::to_string(fraction) +
        " keeps " + std::to_string(static_cast<size_t>(reserve) >> 20) + " MiB of it back (one block needs " +
        std::to_string((pools * pool_block) >> 10) + " KiB)");
  }
  return static_cast<int>(lo);
}

// The NCCL communicator's waits: BATON_COMM_TIMEOUT_S when set, else the
// CLI's pipeline default (5 minutes), since a stage waits for its hidden
// states through whole prefills of the stages before it.
StatusOr<CommOptions> NcclOptions(const Communicator& pipeline) {
  BATON_ASSIGN_OR_RETURN(CommOptions options, CommOptionsFromEnv(pipeline.name() + "-nccl"));
  if (std::getenv(kCommTimeoutEnv) == nullptr) options.timeout = std::chrono::minutes(5);
  return options;
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
  const int num_stages = options.pipeline ? options.pipeline->size() : 1;
  const int stage_index = options.pipeline ? options.pipeline->rank() : 0;
  if (!(options.gpu_memory_fraction > 0 && options.gpu_memory_fraction <= 1)) {
    return Status::InvalidArgument("gpu_memory_fraction must be in (0, 1] (got " +
                                   std::to_string(options.gpu_memory_fraction) + ")");
  }
  BATON_ASSIGN_OR_RETURN(s->backend_, MakeBackend(options));
  if (options.device == Device::kCuda && num_stages > 1) {
    // Hidden states go GPU to GPU over NCCL; plans and tokens stay on the
    // MPI pipeline communicator. Made before the weights load so that every
    // rank joins at about the same moment.
    BATON_ASSIGN_OR_RETURN(CommOptions comm_options, NcclOptions(*options.pipeline));
    BATON_ASSIGN_OR_RETURN(s->activations_,
                           MakeNcclCommunicator(*options.pipeline, *s->backend_, std::move(comm_options)));
  }
  BATON_ASSIGN_OR_RETURN(auto ranges, PartitionLayers(s->config_, num_stages, options.layers_per_stage));
  StageOptions stage_options;
  stage_options.range = ranges[stage_index];
  stage_options.block_size = options.block_size;
  stage_options.show_progress = options.show_progress && stage_index == 0;

  KvCacheShape probe;
  probe.num_kv_heads = s->config_.num_kv_heads;
  probe.head_dim = s->config_.head_dim;
  probe.block_size = options.block_size;
  if (options.kv_cache_bytes == 0 && options.device == Device::kCuda) {
    probe.num_layers = stage_options.range.last_layer - stage_options.range.first_layer;
    Backend* backend = s->backend_.get();
    const double fraction = options.gpu_memory_fraction;
    stage_options.kv_blocks_after_weights = [backend, probe, fraction] {
      return KvBlocksFromDeviceMemory(*backend, probe, fraction);
    };
  } else {
    // Every stage sizes its cache to the same number of blocks (the block
    // ids are shared); kv_cache_bytes is the capacity of the whole model's cache.
    const size_t kv_bytes = options.kv_cache_bytes > 0 ? options.kv_cache_bytes : kDefaultCpuKvCacheBytes;
    const size_t per_block = probe.BytesPerTokenPerLayer(s->backend_->compute_dtype()) *
                             static_cast<size_t>(s->config_.num_layers) * static_cast<size_t>(options.block_size);
    stage_options.num_kv_blocks = static_cast<int>(std::min<size_t>(kv_bytes / per_block, 1 << 24));
    if (stage_options.num_kv_blocks < 1) {
      return Status::InvalidArgument("KV cache of " + std::to_string(kv_bytes) +
                                     " bytes holds no block (one block needs " + std::to_string(per_block) + ")");
    }
  }
  BATON_ASSIGN_OR_RETURN(s->stage_, Stage::Load(options.model_dir, s->config_, stage_options, *s->backend_));
  if (!options.cuda_graphs) s->stage_->set_decode_graphs(false);
  if (options.trace) s->trace_ = std::make_unique<PipelineTrace>();
  if (num_stages == 1) {
    s->runner_ = std::make_unique<LocalRunner>(*s->stage_, s->trace_.get());
  } else if (stage_index == 0) {
    s->runner_ =
        std::make_unique<PipelineRunner>(*s->stage_, *options.pipeline, s->trace_.get(), s->activations_.get());
  }
  s->pipeline_ = options.pipeline;
  int32_t kv_blocks = s->stage_->num_kv_blocks();
  if (num_stages > 1 && stage_options.kv_blocks_after_weights) {
    // Each GPU sized its cache from its own free memory, but block ids are
    // shared by all stages: use only the blocks every stage has.
    BATON_RETURN_IF_ERROR(options.pipeline->AllReduce(std::span<int32_t>(&kv_blocks, 1), ReduceOp::kMin)
                              .WithContext("agreeing on the KV cache size of the pipeline's stages"));
  }
  s->blocks_ = std::make_unique<KvBlockManager>(kv_blocks, options.block_size);
  return s;
}

ModelSession::~ModelSession() { (void)Shutdown(); }

Status ModelSession::RunWorker() {
  if (is_coordinator()) return Status::FailedPrecondition("rank 0 coordinates; it does not run a worker loop");
  return RunPipelineWorker(*stage_, *pipeline_, trace_.get(), activations_.get());
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
