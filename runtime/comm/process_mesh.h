// ProcessMesh: the ranks of a job as dp replicas of a pp-stage pipeline,
// with a communicator for each direction.
//
// Layout: consecutive ranks form one pipeline,
//   rank = dp_index * pp + pp_stage,
// so stage order is rank order, rank 0 is stage 0 of replica 0 (where the
// coordinator lives), and a pure pipeline (dp = 1) is simply the world.
// Launchers fill a node with consecutive ranks, so a pipeline's per-micro-
// batch activation hops stay on one node where it fits, while the
// data-parallel traffic (ZeRO all-gather / reduce-scatter, once per layer)
// crosses nodes. The mapping is pure functions, checkable without MPI.
//
// Not thread-safe beyond what Communicator allows; one per process.
#pragma once

#include <memory>
#include <vector>

#include "runtime/comm/communicator.h"
#include "runtime/comm/mpi_communicator.h"
#include "runtime/core/status.h"

namespace baton {

struct MeshShape {
  int pp = 1;  // pipeline stages per replica
  int dp = 1;  // data-parallel replicas
};

struct MeshCoord {
  int dp_index = 0;
  int pp_stage = 0;
  bool operator==(const MeshCoord&) const = default;
};

// Ok when pp >= 1, dp >= 1 and pp * dp == world_size; otherwise
// InvalidArgument naming the numbers.
Status ValidateMeshShape(MeshShape shape, int world_size);
// For a valid shape and 0 <= rank < pp * dp.
MeshCoord MeshCoordOf(MeshShape shape, int rank);
int MeshRankOf(MeshShape shape, MeshCoord coord);
// Ranks of replica dp_index's stages, in stage order.
std::vector<int> PipelineRanks(MeshShape shape, int dp_index);
// Ranks holding stage pp_stage, in replica order.
std::vector<int> DataParallelRanks(MeshShape shape, int pp_stage);

class ProcessMesh {
 public:
  // Splits `world` (the ranks of the mesh, in mesh-rank order) into this
  // rank's pipeline and data-parallel groups. Collective: every rank calls
  // it with the same shape; a shape that does not match the world size
  // fails the same way on every rank, before any communication.
  static StatusOr<ProcessMesh> Create(MpiCommunicator& world, MeshShape shape);

  MeshShape shape() const { return shape_; }
  MeshCoord coord() const { return coord_; }
  // Size pp; rank s is stage s of this rank's replica.
  Communicator& pipeline() { return *pipeline_; }
  // Size dp; rank d holds this rank's stage in replica d.
  Communicator& data_parallel() { return *data_parallel_; }
  bool is_first_stage() const { return coord_.pp_stage == 0; }
  bool is_last_stage() const { return coord_.pp_stage == shape_.pp - 1; }

 private:
  ProcessMesh() = default;

  MeshShape shape_;
  MeshCoord coord_;
  std::unique_ptr<MpiCommunicator> pipeline_;
  std::unique_ptr<MpiCommunicator> data_parallel_;
};

}  // namespace baton
