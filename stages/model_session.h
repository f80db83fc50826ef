// ModelSession: a model folder opened for generation on one rank: its
// config, tokenizer, generation defaults, a backend, this rank's Stage, the
// ModelRunner that reaches the whole model, and the KV block manager. What
// the CLI, benchmarks and tests start from.
//
// Without a pipeline communicator (or with one of size 1) the stage holds
// the whole model. With P ranks each rank loads only its own stage (a
// balanced contiguous layer range); rank 0 is the coordinator that drives
// generation through a PipelineRunner, the others call RunWorker(). On
// CUDA a pipeline moves hidden states GPU to GPU over a NCCL communicator
// the session makes from the pipeline one (so every rank opens its session
// at about the same time, and `pipeline` must move host memory: MPI).
#pragma once

#include <memory>
#include <string>

#include "runtime/backend/backend.h"
#include "runtime/comm/communicator.h"
#include "runtime/kv/kv_block_manager.h"
#include "runtime/model/model_config.h"
#include "runtime/sampling/sampling_params.h"
#include "runtime/serving/model_runner.h"
#include "runtime/tokenizer/tokenizer.h"
#include "stages/pipeline_trace.h"
#include "stages/stage.h"

namespace baton {

inline constexpr size_t kDefaultCpuKvCacheBytes = size_t{512} << 20;

struct SessionOptions {
  std::string model_dir;
  // Where the model runs. On kCuda the weights, activations and KV cache
  // live on GPU `gpu_index` (a rank's local rank) in `dtype`; tokens are
  // sampled on the GPU and only their ids come back (rows that ask for
  // logprobs copy their logits). The CPU computes in F32 only.
  Device device = Device::kCpu;
  DType dtype = DType::kF32;  // CUDA: BF16, F16, or F32 (parity mode, no TF32)
  int gpu_index = 0;
  // Capacity of the paged KV cache (all stages together). 0: sized from
  // the GPU's memory once the weights are loaded (the cache fills what
  // the weights leave of `gpu_memory_fraction` of the card); on the CPU,
  // 0 means kDefaultCpuKvCacheBytes.
  size_t kv_cache_bytes = size_t{512} << 20;
  double gpu_memory_fraction = 0.9;
  int block_size = KvBlockManager::kDefaultBlockSize;
  int threads = 0;  // CPU threads for BLAS/OpenMP; 0 = library default
  bool show_progress = false;
  // Pipeline: the communicator of this rank's pipeline (stages in rank
  // order), or null for a single stage. Not owned; must outlive the session.
  Communicator* pipeline = nullptr;
  std::vector<int> layers_per_stage;  // overrides the balanced split
  bool trace = false;                 // record a pipeline trace (see WriteTrace)
  // CUDA: replay decode steps from CUDA graphs (Stage); false runs eagerly.
  // BATON_CUDA_GRAPHS=off in the environment turns them off too.
  bool cuda_graphs = true;
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
  // Rank 0 only: generation goes through this.
  ModelRunner& runner() { return *runner_; }
  KvBlockManager& blocks() { return *blocks_; }
  Backend& backend() { return *backend_; }
  bool is_coordinator() const { return runner_ != nullptr; }
  int num_stages() const { return pipeline_ ? pipeline_->size() : 1; }
  // Ranks other than 0: serve pipeline steps until the coordinator stops.
  Status RunWorker();
  // Rank 0: tell the workers to stop (also done on destruction).
  Status Shutdown();
  // With options.trace: every rank calls this once its work is done (rank 0
  // after generating, which also stops the workers); rank 0 writes the
  // merged trace to `path` and gets the utilization summary.
  StatusOr<PipelineUtilization> WriteTrace(const std::string& path, int micro_batches);
  ~ModelSession();

 private:
  ModelSession() = default;

  ModelConfig config_;
  std::unique_ptr<Tokenizer> tokenizer_;
  SamplingParams default_sampling_;
  std::unique_ptr<Backend> backend_;
  Communicator* pipeline_ = nullptr;
  // CUDA pipelines: hidden states over NCCL. Declared after backend_ so it
  // is destroyed first (it waits on the backend's stream).
  std::unique_ptr<Communicator> activations_;
  std::unique_ptr<PipelineTrace> trace_;
  std::unique_ptr<Stage> stage_;
  std::unique_ptr<ModelRunner> runner_;
  std::unique_ptr<KvBlockManager> blocks_;
};

}  // namespace baton
