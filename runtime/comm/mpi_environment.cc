#include "runtime/comm/mpi_environment.h"

#include <cstdlib>

namespace baton {
namespace {

MpiThreadLevel ThreadLevelOf(int provided) {
  if (provided >= MPI_THREAD_MULTIPLE) return MpiThreadLevel::kMultiple;
  if (provided >= MPI_THREAD_SERIALIZED) return MpiThreadLevel::kSerialized;
  if (provided >= MPI_THREAD_FUNNELED) return MpiThreadLevel::kFunneled;
  return MpiThreadLevel::kSingle;
}

}  // namespace

const char* MpiThreadLevelName(MpiThreadLevel level) {
  switch (level) {
    case MpiThreadLevel::kSingle:
      return "MPI_THREAD_SINGLE";
    case MpiThreadLevel::kFunneled:
      return "MPI_THREAD_FUNNELED";
    case MpiThreadLevel::kSerialized:
      return "MPI_THREAD_SERIALIZED";
    case MpiThreadLevel::kMultiple:
      return "MPI_THREAD_MULTIPLE";
  }
  return "unknown";
}

bool LaunchedByMpiLauncher() {
  // Open MPI's mpirun sets OMPI_COMM_WORLD_SIZE; MPICH's hydra and Slurm's
  // srun --mpi=pmi2 set PMI_SIZE; PMIx launchers set PMIX_RANK.
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"}) {
    const char* value = std::getenv(name);
    if (value != nullptr && *value != '\0') return true;
  }
  return false;
}

StatusOr<std::unique_ptr<MpiEnvironment>> MpiEnvironment::Init(int* argc, char*** argv) {
  int initialized = 0;
  int finalized = 0;
  BATON_MPI_CHECK(MPI_Initialized(&initialized));
  BATON_MPI_CHECK(MPI_Finalized(&finalized));
  if (initialized != 0 || finalized != 0) {
    return Status::FailedPrecondition(finalized != 0 ? "MPI was finalised; it cannot be initialised again"
                                                     : "MPI is already initialised (one MpiEnvironment per process)");
  }
  std::unique_ptr<MpiEnvironment> env(new MpiEnvironment());
  env->launched_ = LaunchedByMpiLauncher();
  int provided = MPI_THREAD_SINGLE;
  // Errors of MPI_Init itself are fatal in MPI; there is no handler to set yet.
  BATON_MPI_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided));
  // From here the destructor finalises, whatever fails next.
  env->thread_level_ = ThreadLevelOf(provided);
  BATON_MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
  BATON_MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_SELF, MPI_ERRORS_RETURN));
  if (env->thread_level_ < MpiThreadLevel::kFunneled) {
    return Status::FailedPrecondition(std::string("MPI granted only ") + MpiThreadLevelName(env->thread_level_) +
                                      "; Baton needs at least MPI_THREAD_FUNNELED (its compute threads exist)");
  }
  BATON_RETURN_IF_ERROR(env->ReadTopology());
  return env;
}

Status MpiEnvironment::ReadTopology() {
  BATON_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &world_rank_));
  BATON_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &world_size_));
  // Ranks sharing memory share a node: their order there picks the GPU.
  MPI_Comm node = MPI_COMM_NULL;
  BATON_MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, world_rank_, MPI_INFO_NULL, &node));
  int rank_status = MPI_Comm_rank(node, &local_rank_);
  int size_status = MPI_Comm_size(node, &local_size_);
  MPI_Comm_free(&node);
  BATON_MPI_CHECK(rank_status);
  BATON_MPI_CHECK(size_status);

  char version[MPI_MAX_LIBRARY_VERSION_STRING];
  int length = 0;
  BATON_MPI_CHECK(MPI_Get_library_version(version, &length));
  library_.assign(version, static_cast<size_t>(length));
  size_t line_end = library_.find_first_of("\r\n");
  if (line_end != std::string::npos) library_.resize(line_end);
  while (!library_.empty() && (library_.back() == ' ' || library_.back() == '\0')) library_.pop_back();
  return Status::Ok();
}

MpiEnvironment::~MpiEnvironment() {
  if (MpiIsActive()) MPI_Finalize();
}

std::string MpiEnvironment::Describe() const {
  return "rank " + std::to_string(world_rank_) + " of " + std::to_string(world_size_) + " (node rank " +
         std::to_string(local_rank_) + " of " + std::to_string(local_size_) + "), " +
         MpiThreadLevelName(thread_level_) + (launched_ ? ", under a launcher, " : ", singleton, ") + library_;
}

StatusOr<std::unique_ptr<MpiCommunicator>> MpiEnvironment::World(CommOptions options) const {
  return MpiCommunicator::Create(MPI_COMM_WORLD, std::move(options));
}

}  // namespace baton
