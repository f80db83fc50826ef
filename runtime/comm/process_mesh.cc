#include "runtime/comm/process_mesh.h"

#include <cstdint>
#include <string>
#include <utility>

namespace baton {

Status ValidateMeshShape(MeshShape shape, int world_size) {
  const std::string numbers = "pp=" + std::to_string(shape.pp) + " x dp=" + std::to_string(shape.dp);
  if (shape.pp < 1 || shape.dp < 1) {
    return Status::InvalidArgument("process mesh " + numbers + ": both must be at least 1");
  }
  const int64_t ranks = int64_t{shape.pp} * shape.dp;
  if (ranks != world_size) {
    return Status::InvalidArgument("process mesh " + numbers + " needs " + std::to_string(ranks) +
                                   " ranks, but the job has " + std::to_string(world_size));
  }
  return Status::Ok();
}

MeshCoord MeshCoordOf(MeshShape shape, int rank) {
  return MeshCoord{.dp_index = rank / shape.pp, .pp_stage = rank % shape.pp};
}

int MeshRankOf(MeshShape shape, MeshCoord coord) { return coord.dp_index * shape.pp + coord.pp_stage; }

std::vector<int> PipelineRanks(MeshShape shape, int dp_index) {
  std::vector<int> ranks;
  for (int stage = 0; stage < shape.pp; ++stage) ranks.push_back(MeshRankOf(shape, {dp_index, stage}));
  return ranks;
}

std::vector<int> DataParallelRanks(MeshShape shape, int pp_stage) {
  std::vector<int> ranks;
  for (int replica = 0; replica < shape.dp; ++replica) ranks.push_back(MeshRankOf(shape, {replica, pp_stage}));
  return ranks;
}

StatusOr<ProcessMesh> ProcessMesh::Create(MpiCommunicator& world, MeshShape shape) {
  BATON_RETURN_IF_ERROR(ValidateMeshShape(shape, world.size()));
  ProcessMesh mesh;
  mesh.shape_ = shape;
  mesh.coord_ = MeshCoordOf(shape, world.rank());
  CommOptions pipeline_options = world.options();
  pipeline_options.name = "pipeline";
  CommOptions data_parallel_options = world.options();
  data_parallel_options.name = "data_parallel";
  // Colour picks the group, key the order inside it.
  BATON_ASSIGN_OR_RETURN(mesh.pipeline_,
                         world.Split(mesh.coord_.dp_index, mesh.coord_.pp_stage, std::move(pipeline_options)));
  BATON_ASSIGN_OR_RETURN(mesh.data_parallel_,
                         world.Split(mesh.coord_.pp_stage, mesh.coord_.dp_index, std::move(data_parallel_options)));
  return mesh;
}

}  // namespace baton
