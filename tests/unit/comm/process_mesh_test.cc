#include "runtime/comm/process_mesh.h"

#include <gtest/gtest.h>

#include <set>

namespace baton {
namespace {

TEST(ProcessMeshMath, ValidatesAndNamesTheNumbers) {
  EXPECT_TRUE(ValidateMeshShape({.pp = 2, .dp = 2}, 4).ok());
  EXPECT_TRUE(ValidateMeshShape({.pp = 1, .dp = 1}, 1).ok());
  Status mismatch = ValidateMeshShape({.pp = 3, .dp = 2}, 4);
  EXPECT_EQ(mismatch.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(mismatch.message(), "process mesh pp=3 x dp=2 needs 6 ranks, but the job has 4");
  Status zero = ValidateMeshShape({.pp = 0, .dp = 4}, 4);
  EXPECT_EQ(zero.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(zero.message().find("pp=0 x dp=4"), std::string::npos) << zero.message();
  // pp * dp overflowing int must not wrap around to a "match".
  EXPECT_FALSE(ValidateMeshShape({.pp = 65536, .dp = 65536}, 0).ok());
}

TEST(ProcessMeshMath, ConsecutiveRanksFormOnePipeline) {
  const MeshShape shape{.pp = 2, .dp = 2};
  EXPECT_EQ(MeshCoordOf(shape, 0), (MeshCoord{.dp_index = 0, .pp_stage = 0}));
  EXPECT_EQ(MeshCoordOf(shape, 1), (MeshCoord{.dp_index = 0, .pp_stage = 1}));
  EXPECT_EQ(MeshCoordOf(shape, 2), (MeshCoord{.dp_index = 1, .pp_stage = 0}));
  EXPECT_EQ(MeshCoordOf(shape, 3), (MeshCoord{.dp_index = 1, .pp_stage = 1}));
  EXPECT_EQ(PipelineRanks(shape, 1), (std::vector<int>{2, 3}));
  EXPECT_EQ(DataParallelRanks(shape, 1), (std::vector<int>{1, 3}));
}

TEST(ProcessMeshMath, GroupsPartitionTheWorld) {
  for (MeshShape shape : {MeshShape{4, 1}, MeshShape{1, 4}, MeshShape{3, 2}, MeshShape{2, 3}}) {
    const int world = shape.pp * shape.dp;
    std::multiset<int> in_pipelines, in_dp_groups;
    for (int replica = 0; replica < shape.dp; ++replica) {
      std::vector<int> ranks = PipelineRanks(shape, replica);
      ASSERT_EQ(static_cast<int>(ranks.size()), shape.pp);
      for (int stage = 0; stage < shape.pp; ++stage) {
        EXPECT_EQ(MeshCoordOf(shape, ranks[stage]), (MeshCoord{replica, stage}));
        in_pipelines.insert(ranks[stage]);
      }
    }
    for (int stage = 0; stage < shape.pp; ++stage) {
      for (int rank : DataParallelRanks(shape, stage)) in_dp_groups.insert(rank);
    }
    for (int rank = 0; rank < world; ++rank) {
      EXPECT_EQ(in_pipelines.count(rank), 1u) << "pp=" << shape.pp << " dp=" << shape.dp << " rank " << rank;
      EXPECT_EQ(in_dp_groups.count(rank), 1u) << "pp=" << shape.pp << " dp=" << shape.dp << " rank " << rank;
      EXPECT_EQ(MeshRankOf(shape, MeshCoordOf(shape, rank)), rank);
    }
  }
}

}  // namespace
}  // namespace baton
