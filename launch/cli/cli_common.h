// Pieces every `baton` subcommand shares: the model flags, parsing of id
// lists, and how a failure becomes a message and an exit code.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <string>
#include <vector>

#include "runtime/comm/mpi_communicator.h"
#include "runtime/comm/mpi_environment.h"
#include "stages/model_session.h"

namespace baton::cli {

// A subcommand's work; its Status decides the exit code (see Status::ExitCode).
using CommandRun = std::function<Status()>;

struct ModelFlags {
  std::string model_dir = BATON_BUNDLED_MODEL;
  int threads = 0;
  std::string device;      // "cpu" or "cuda"; empty: cuda when a GPU is visible
  std::string dtype;       // "bf16", "f16" or "f32"; empty: bf16 on cuda, f32 on cpu
  double kv_cache_mb = 0;  // 0: 512 MiB on cpu, sized from free GPU memory on cuda
  double gpu_memory_fraction = 0.9;
  std::string cuda_graphs = "on";  // decode steps from CUDA graphs (cuda)
  int stages = 0;                // 0: one stage per rank
  std::string layers_per_stage;  // "6,10": overrides the balanced split
  std::string trace_path;        // --trace (generate only)
};
void AddModelFlags(CLI::App& cmd, ModelFlags& flags);

// The ranks this process runs with: MPI when a launcher (mpirun, srun)
// started it, one rank and no MPI otherwise.
class RankContext {
 public:
  // `stages`, when positive, must equal the number of ranks.
  static StatusOr<std::unique_ptr<RankContext>> Join(int stages);
  Communicator* pipeline() { return world_.get(); }  // null for one rank
  MpiCommunicator* world() { return world_.get(); }  // null for one rank
  int rank() const { return world_ ? world_->rank() : 0; }
  int size() const { return world_ ? world_->size() : 1; }
  // Rank among this node's ranks: the GPU it uses.
  int local_rank() const { return env_ ? env_->local_rank() : 0; }
  // A failure on one rank of several ends the whole job (every rank exits
  // non-zero, none waits for a peer that is gone); on one rank it is
  // simply returned.
  Status Fail(const Status& status);

 private:
  std::unique_ptr<MpiEnvironment> env_;
  std::unique_ptr<MpiCommunicator> world_;
};

// Joins the ranks, opens this rank's stage of the model (printing its layers
// and resident bytes on stderr) and runs `coordinate` on rank 0 while the
// other ranks serve pipeline steps until it is done. Bad input found by
// `coordinate` returns exit code 2 with the workers stopped cleanly; any
// other failure on any rank ends the whole job.
Status RunOnPipeline(const ModelFlags& flags, const std::function<Status(ModelSession&)>& coordinate);

// Layers of each pipeline stage, as this job split them (one entry per rank).
StatusOr<std::vector<int>> StageLayout(const ModelFlags& flags, const ModelSession& session);

// "1,2,3" -> {1, 2, 3}; `flag` names the option in errors.
StatusOr<std::vector<int32_t>> ParseIdList(const std::string& text, const std::string& flag);

void RegisterGenerateCommand(CLI::App& app, CommandRun& run);
void RegisterLogitsCommand(CLI::App& app, CommandRun& run);
void RegisterMakeModelCommand(CLI::App& app, CommandRun& run);
void RegisterFinetuneCommand(CLI::App& app, CommandRun& run);

}  // namespace baton::cli
