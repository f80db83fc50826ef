// MpiEnvironment: MPI for the life of the process. Initialises it (with the
// strongest thread support the library grants), says where this rank sits
// (world rank, rank on its node), and finalises it when destroyed.
//
// One per process, made by main() before any CUDA call: local_rank() picks
// the rank's GPU. Destroy every MpiCommunicator first. A program started
// without mpirun runs as a world of one rank (MPI "singleton" mode), so
// `baton generate` works the same with and without a launcher.
// Thread-safety: the accessors are constant after Init.
#pragma once

#include <memory>
#include <string>

#include "runtime/comm/comm_options.h"
#include "runtime/comm/mpi_communicator.h"
#include "runtime/core/status.h"

namespace baton {

enum class MpiThreadLevel { kSingle, kFunneled, kSerialized, kMultiple };
// "MPI_THREAD_MULTIPLE", ...
const char* MpiThreadLevelName(MpiThreadLevel level);

// True when a launcher (mpirun, or srun/hydra through PMI) started this
// process; read the environment before MPI_Init, which may change it.
bool LaunchedByMpiLauncher();

class MpiEnvironment {
 public:
  // MPI_Init_thread asking for MPI_THREAD_MULTIPLE. A library granting less
  // than MPI_THREAD_FUNNELED is FailedPrecondition; with FUNNELED or
  // SERIALIZED only one thread at a time (the initialising one, for
  // FUNNELED) may use communicators. MPI can be initialised once per
  // process: a second Init is FailedPrecondition. argc/argv may be null.
  static StatusOr<std::unique_ptr<MpiEnvironment>> Init(int* argc, char*** argv);
  ~MpiEnvironment();  // MPI_Finalize
  MpiEnvironment(const MpiEnvironment&) = delete;
  MpiEnvironment& operator=(const MpiEnvironment&) = delete;

  int world_rank() const { return world_rank_; }
  int world_size() const { return world_size_; }
  // Rank among the ranks on this node (shared memory), 0..local_size()-1,
  // in world-rank order: the GPU index to use.
  int local_rank() const { return local_rank_; }
  int local_size() const { return local_size_; }
  MpiThreadLevel thread_level() const { return thread_level_; }
  // Whether a launcher started us, as seen before MPI_Init.
  bool launched() const { return launched_; }
  // "Open MPI v4.1.4, ..." (the first line of MPI_Get_library_version).
  const std::string& library() const { return library_; }
  // "rank 1 of 4 (node rank 1 of 4), MPI_THREAD_MULTIPLE, Open MPI v4.1.4 ..."
  std::string Describe() const;

  // A communicator over every rank.
  StatusOr<std::unique_ptr<MpiCommunicator>> World(CommOptions options) const;

 private:
  MpiEnvironment() = default;
  // Reads ranks, node ranks and the library version after MPI_Init.
  Status ReadTopology();

  int world_rank_ = 0;
  int world_size_ = 1;
  int local_rank_ = 0;
  int local_size_ = 1;
  MpiThreadLevel thread_level_ = MpiThreadLevel::kSingle;
  bool launched_ = false;
  std::string library_;
};

}  // namespace baton
