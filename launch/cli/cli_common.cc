#include "launch/cli/cli_common.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "runtime/backend/cuda/make_cuda_backend.h"
#include "runtime/comm/abort_job.h"
#include "stages/stage_partition.h"

namespace baton::cli {

void AddModelFlags(CLI::App& cmd, ModelFlags& flags) {
  cmd.add_option("--model", flags.model_dir, "Hugging Face model folder (config.json, *.safetensors, tokenizer.json)")
      ->capture_default_str();
  cmd.add_option("--threads", flags.threads, "CPU threads (0: all cores)");
  cmd.add_option("--device", flags.device, "cpu or cuda (default: cuda when a GPU is visible)")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  cmd.add_option("--dtype", flags.dtype,
                 "Compute dtype: bf16, f16 or f32 (cuda only; default bf16 on cuda, f32 on cpu)")
      ->check(CLI::IsMember({"bf16", "f16", "f32"}));
  cmd.add_option("--kv-cache-mb", flags.kv_cache_mb,
                 "KV cache capacity in MiB, all stages together (default: 512 on cpu; on cuda, what the weights "
                 "leave of --gpu-memory-fraction)");
  cmd.add_option("--gpu-memory-fraction", flags.gpu_memory_fraction,
                 "Share of the GPU's memory for weights and KV cache together (cuda)")
      ->capture_default_str();
  cmd.add_option("--cuda-graphs", flags.cuda_graphs, "Replay decode steps from CUDA graphs: on | off (cuda)")
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
  cmd.add_option("--stages", flags.stages, "Pipeline stages (must equal the number of MPI ranks)");
  cmd.add_option("--layers-per-stage", flags.layers_per_stage, "Layers of each stage, e.g. 6,10 (default: balanced)");
}

StatusOr<std::unique_ptr<RankContext>> RankContext::Join(int stages) {
  auto ranks = std::make_unique<RankContext>();
  if (LaunchedByMpiLauncher()) {
    int argc = 0;
    char** argv = nullptr;
    BATON_ASSIGN_OR_RETURN(ranks->env_, MpiEnvironment::Init(&argc, &argv));
    BATON_ASSIGN_OR_RETURN(CommOptions options, CommOptionsFromEnv("pipeline"));
    // Workers wait for rank 0 through whole model loads and prefills; a dead
    // rank is caught by the launcher (or AbortJob) long before this.
    if (std::getenv(kCommTimeoutEnv) == nullptr) options.timeout = std::chrono::minutes(5);
    BATON_ASSIGN_OR_RETURN(ranks->world_, ranks->env_->World(options));
  }
  if (stages > 0 && stages != ranks->size()) {
    return Status::InvalidArgument("--stages " + std::to_string(stages) + " but the job has " +
                                   std::to_string(ranks->size()) + " ranks (start one rank per stage: mpirun -np " +
                                   std::to_string(stages) + ")");
  }
  return ranks;
}

Status RankContext::Fail(const Status& status) {
  if (size() > 1) AbortJob(status);
  return status;
}

// --device and --dtype as SessionOptions fields (the defaults resolved).
static Status ResolveDevice(const ModelFlags& flags, int local_rank, SessionOptions& options) {
  const std::string device = !flags.device.empty() ? flags.device : CudaDeviceCount() > 0 ? "cuda" : "cpu";
  options.device = device == "cuda" ? Device::kCuda : Device::kCpu;
  options.gpu_index = local_rank;
  const std::string dtype = !flags.dtype.empty() ? flags.dtype : device == "cuda" ? "bf16" : "f32";
  options.dtype = dtype == "bf16" ? DType::kBF16 : dtype == "f16" ? DType::kF16 : DType::kF32;
  if (device == "cpu" && options.dtype != DType::kF32) {
    return Status::InvalidArgument("--dtype " + dtype + " needs --device cuda (the CPU computes in f32)");
  }
  return Status::Ok();
}

static StatusOr<std::unique_ptr<ModelSession>> OpenSession(const ModelFlags& flags, RankContext& ranks) {
  if (!(flags.kv_cache_mb >= 0)) return Status::InvalidArgument("--kv-cache-mb must not be negative");
  if (!(flags.gpu_memory_fraction > 0 && flags.gpu_memory_fraction <= 1)) {
    return Status::InvalidArgument("--gpu-memory-fraction must be in (0, 1] (got " +
                                   std::to_string(flags.gpu_memory_fraction) + ")");
  }
  SessionOptions options;
  options.model_dir = flags.model_dir;
  options.threads = flags.threads;
  options.cuda_graphs = flags.cuda_graphs == "on";
  BATON_RETURN_IF_ERROR(ResolveDevice(flags, ranks.local_rank(), options));
  options.kv_cache_bytes = static_cast<size_t>(flags.kv_cache_mb * (1 << 20));
  options.gpu_memory_fraction = flags.gpu_memory_fraction;
  options.show_progress = true;
  options.pipeline = ranks.size() > 1 ? ranks.pipeline() : nullptr;
  options.trace = !flags.trace_path.empty();
  if (!flags.layers_per_stage.empty()) {
    BATON_ASSIGN_OR_RETURN(options.layers_per_stage, ParseIdList(flags.layers_per_stage, "--layers-per-stage"));
  }
  BATON_ASSIGN_OR_RETURN(auto session, ModelSession::Open(options));
  const StageRange& r = session->stage().range();
  std::fprintf(stderr, "baton: stage %d/%d: layers [%d, %d)%s%s on %s (%s), weights %.1f MB, KV cache %.1f MB\n",
               ranks.rank(), ranks.size(), r.first_layer, r.last_layer,
               session->stage().is_first() ? " + embedding" : "", session->stage().is_last() ? " + head" : "",
               options.device == Device::kCuda ? ("cuda:" + std::to_string(options.gpu_index)).c_str() : "cpu",
               DTypeName(options.dtype), session->stage().weight_bytes() / 1e6,
               session->stage().kv_cache_bytes() / 1e6);
  return session;
}

Status RunOnPipeline(const ModelFlags& flags, const std::function<Status(ModelSession&)>& coordinate) {
  BATON_ASSIGN_OR_RETURN(auto ranks, RankContext::Join(flags.stages));
  auto session = OpenSession(flags, *ranks);
  if (!session.ok()) return ranks->Fail(session.status());
  if (!(*session)->is_coordinator()) {
    Status st = (*session)->RunWorker();
    if (st.ok() && !flags.trace_path.empty()) st = (*session)->WriteTrace(flags.trace_path, 0).status();
    return st.ok() ? st : ranks->Fail(st);
  }
  Status st = coordinate(**session);
  return st.ok() || st.ExitCode() == 2 ? st : ranks->Fail(st);
}

StatusOr<std::vector<int>> StageLayout(const ModelFlags& flags, const ModelSession& session) {
  std::vector<int> override;
  if (!flags.layers_per_stage.empty()) {
    BATON_ASSIGN_OR_RETURN(override, ParseIdList(flags.layers_per_stage, "--layers-per-stage"));
  }
  BATON_ASSIGN_OR_RETURN(auto ranges, PartitionLayers(session.config(), session.num_stages(), override));
  std::vector<int> layers;
  for (const StageRange& r : ranges) layers.push_back(r.last_layer - r.first_layer);
  return layers;
}

StatusOr<std::vector<int32_t>> ParseIdList(const std::string& text, const std::string& flag) {
  std::vector<int32_t> ids;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    const std::string item = text.substr(start, end - start);
    char* stop = nullptr;
    errno = 0;
    const long long v = std::strtoll(item.c_str(), &stop, 10);
    if (item.empty() || *stop != '\0' || errno == ERANGE || v < INT32_MIN || v > INT32_MAX) {
      return Status::InvalidArgument(flag + ": '" + item + "' is not a token id (expected e.g. 1,2,3)");
    }
    ids.push_back(static_cast<int32_t>(v));
    start = end + 1;
  }
  return ids;
}

}  // namespace baton::cli
