// Sharded training checkpoints: bit-exact round trips of several ranks'
// tensors and meta, the commit protocol (latest only after commit,
// incomplete steps ignored), damaged files, world-size mismatches, pruning.
#include "runtime/training/train_checkpoint.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "tests/test_data.h"

namespace baton {
namespace {

namespace fs = std::filesystem;
using ::baton::testing::MakeTempDir;

bool Contains(const Status& s, const std::string& part) { return s.message().find(part) != std::string::npos; }

Tensor F32(const Shape& shape, std::vector<float> values) {
  Tensor t = Tensor::Empty(shape, DType::kF32);
  std::memcpy(t.raw(), values.data(), values.size() * sizeof(float));
  return t;
}

// Rank `rank`'s state: awkward float bit patterns (NaN payload, -0, a
// denormal, infinity), integers, an empty shard and a bf16 tensor.
RankTrainState MakeState(int rank) {
  RankTrainState s;
  uint32_t nan_bits = 0x7fc01234u;
  float nan;
  std::memcpy(&nan, &nan_bits, 4);
  s.tensors.push_back({"layers.0.param_shard", F32({2, 3}, {1.5f + rank, -0.0f, nan, 1e-42f, -INFINITY, 0.1f})});
  Tensor m = Tensor::Empty({4}, DType::kF32);
  for (int i = 0; i < 4; ++i) m.data<float>()[i] = std::ldexp(1.0f, -i) * static_cast<float>(rank + 1) / 3.0f;
  s.tensors.push_back({"adam.m", m});
  Tensor step = Tensor::Empty({2}, DType::kI32);
  step.data<int32_t>()[0] = std::numeric_limits<int32_t>::min();
  step.data<int32_t>()[1] = 7 + rank;
  s.tensors.push_back({"counters", step});
  s.tensors.push_back({"empty_shard", Tensor::Empty({0}, DType::kF32)});
  Tensor half = Tensor::Empty({3}, DType::kBF16);
  for (int i = 0; i < 3; ++i) half.data<uint16_t>()[i] = static_cast<uint16_t>(0x3f80 + i + rank);
  s.tensors.push_back({"bf16_copy", half});
  s.meta = {{"rng", std::numeric_limits<uint64_t>::max() - static_cast<uint64_t>(rank)},
            {"data_step", 2},
            {"lr", 0.1},
            {"tag", "rank " + std::to_string(rank)},
            {"nested", {{"a", {1, 2, 3}}}}};
  return s;
}

void ExpectSame(const RankTrainState& got, const RankTrainState& want) {
  ASSERT_EQ(got.tensors.size(), want.tensors.size());
  for (size_t i = 0; i < want.tensors.size(); ++i) {
    const auto& [name, t] = want.tensors[i];
    EXPECT_EQ(got.tensors[i].first, name);
    const Tensor& g = got.tensors[i].second;
    EXPECT_EQ(g.dtype(), t.dtype()) << name;
    EXPECT_EQ(g.shape(), t.shape()) << name;
    ASSERT_EQ(g.nbytes(), t.nbytes()) << name;
    if (t.nbytes() > 0) {
      EXPECT_EQ(std::memcmp(g.raw(), t.raw(), t.nbytes()), 0) << name << " differs bitwise";
    }
  }
  EXPECT_EQ(got.meta, want.meta);
}

Status SaveAll(const std::string& dir, int64_t step, int world) {
  for (int r = 0; r < world; ++r) BATON_RETURN_IF_ERROR(SaveRankCheckpoint(dir, step, r, world, MakeState(r)));
  return Status::Ok();
}

std::string RankPath(const std::string& dir, int64_t step, int rank, int world) {
  return dir + "/step-" + std::to_string(step) + "/rank-" + std::to_string(rank) + "-of-" + std::to_string(world) +
         ".safetensors";
}

TEST(TrainCheckpoint, RoundTripIsBitExactForEveryRank) {
  const std::string dir = MakeTempDir("train-ckpt");
  ASSERT_TRUE(SaveAll(dir, 2, 3).ok());
  const nlohmann::json job = {{"pp", 3}, {"dp", 1}, {"step", 2}, {"flags", {{"lr", 1e-4}, {"schedule", "1f1b"}}}};
  ASSERT_TRUE(CommitCheckpoint(dir, 2, job).ok());

  auto latest = LatestCheckpointStep(dir);
  ASSERT_TRUE(latest.ok()) << latest.status().ToString();
  EXPECT_EQ(*latest, 2);
  auto meta = LoadCheckpointMeta(dir, 2);
  ASSERT_TRUE(meta.ok()) << meta.status().ToString();
  EXPECT_EQ(*meta, job);
  for (int r = 0; r < 3; ++r) {
    auto state = LoadRankCheckpoint(dir, 2, r, 3);
    ASSERT_TRUE(state.ok()) << state.status().ToString();
    ExpectSame(*state, MakeState(r));
    EXPECT_EQ(state->meta["rng"].get<uint64_t>(), std::numeric_limits<uint64_t>::max() - r);
    // Loaded tensors are the caller's own memory: writing them leaves the file alone.
    state->tensors[1].second.data<float>()[0] = 123.0f;
    auto again = LoadRankCheckpoint(dir, 2, r, 3);
    ASSERT_TRUE(again.ok());
    ExpectSame(*again, MakeState(r));
  }
  // No temporary file is left behind.
  EXPECT_FALSE(fs::exists(RankPath(dir, 2, 0, 3) + ".partial"));
}

TEST(TrainCheckpoint, LatestMovesOnlyOnCommit) {
  const std::string dir = MakeTempDir("train-ckpt");
  auto none = LatestCheckpointStep(dir);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(Contains(none.status(), dir)) << none.status().message();

  ASSERT_TRUE(SaveAll(dir, 1, 2).ok());
  EXPECT_EQ(LatestCheckpointStep(dir).status().code(), StatusCode::kNotFound);  // saved, not committed
  auto uncommitted = LoadRankCheckpoint(dir, 1, 0, 2);
  ASSERT_FALSE(uncommitted.ok());
  EXPECT_EQ(uncommitted.status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(Contains(uncommitted.status(), "not a committed checkpoint")) << uncommitted.status().message();
  EXPECT_EQ(LoadCheckpointMeta(dir, 1).status().code(), StatusCode::kNotFound);

  ASSERT_TRUE(CommitCheckpoint(dir, 1, {{"step", 1}}).ok());
  EXPECT_EQ(LatestCheckpointStep(dir).value(), 1);

  ASSERT_TRUE(SaveAll(dir, 3, 2).ok());
  EXPECT_EQ(LatestCheckpointStep(dir).value(), 1);
  ASSERT_TRUE(CommitCheckpoint(dir, 3, {{"step", 3}}).ok());
  EXPECT_EQ(LatestCheckpointStep(dir).value(), 3);
  EXPECT_EQ(LoadCheckpointMeta(dir, 1).value(), (nlohmann::json{{"step", 1}}));  // older commits stay readable
  EXPECT_FALSE(fs::exists(dir + "/latest.tmp"));
}

TEST(TrainCheckpoint, IncompleteStepIsNeverCommittedOrResumed) {
  const std::string dir = MakeTempDir("train-ckpt");
  ASSERT_TRUE(SaveAll(dir, 1, 2).ok());
  ASSERT_TRUE(CommitCheckpoint(dir, 1, {}).ok());
  // Step 2: rank 1 died before saving.
  ASSERT_TRUE(SaveRankCheckpoint(dir, 2, 0, 2, MakeState(0)).ok());
  const Status commit = CommitCheckpoint(dir, 2, {});
  ASSERT_FALSE(commit.ok());
  EXPECT_EQ(commit.code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(Contains(commit, "rank-1-of-2.safetensors")) << commit.message();
  EXPECT_FALSE(fs::exists(dir + "/step-2/meta.json"));
  EXPECT_EQ(LatestCheckpointStep(dir).value(), 1);
  EXPECT_FALSE(LoadRankCheckpoint(dir, 2, 0, 2).ok());
  // Nothing saved at all.
  EXPECT_EQ(CommitCheckpoint(dir, 5, {}).code(), StatusCode::kFailedPrecondition);
}

TEST(TrainCheckpoint, CommittedStepIsNotOverwritten) {
  const std::string dir = MakeTempDir("train-ckpt");
  ASSERT_TRUE(SaveAll(dir, 4, 1).ok());
  ASSERT_TRUE(CommitCheckpoint(dir, 4, {}).ok());
  const Status s = SaveRankCheckpoint(dir, 4, 0, 1, MakeState(1));
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(Contains(s, "step-4")) << s.message();
  ExpectSame(LoadRankCheckpoint(dir, 4, 0, 1).value(), MakeState(0));
}

TEST(TrainCheckpoint, TruncatedRankFileIsDataLossNamingIt) {
  const std::string dir = MakeTempDir("train-ckpt");
  ASSERT_TRUE(SaveAll(dir, 1, 2).ok());
  ASSERT_TRUE(CommitCheckpoint(dir, 1, {}).ok());
  const std::string path = RankPath(dir, 1, 1, 2);
  fs::resize_file(path, fs::file_size(path) - 5);
  auto r = LoadRankCheckpoint(dir, 1, 1, 2);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << r.status().ToString();
  EXPECT_TRUE(Contains(r.status(), path)) << r.status().message();
  EXPECT_TRUE(LoadRankCheckpoint(dir, 1, 0, 2).ok());  // the other rank is fine

  fs::resize_file(path, 3);
  r = LoadRankCheckpoint(dir, 1, 1, 2);
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << r.status().ToString();
  EXPECT_TRUE(Contains(r.status(), path)) << r.status().message();
}

TEST(TrainCheckpoint, FlippedDataByteIsCaughtByTheChecksum) {
  const std::string dir = MakeTempDir("train-ckpt");
  ASSERT_TRUE(SaveAll(dir, 1, 1).ok());
  ASSERT_TRUE(CommitCheckpoint(dir, 1, {}).ok());
  const std::string path = RankPath(dir, 1, 0, 1);
  {
    // The file ends with the last tensor's bytes (bf16_copy): flip the top bit of its last byte.
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(-1, std::ios::end);
    char c = 0;
    f.get(c);
    f.seekp(-1, std::ios::end);
    f.put(static_cast<char>(c ^ 0x80));
  }
  auto r = LoadRankCheckpoint(dir, 1, 0, 1);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
  EXPECT_TRUE(Contains(r.status(), path)) << r.status().message();
  EXPECT_TRUE(Contains(r.status(), "'bf16_copy'")) << r.status().message();
  EXPECT_TRUE(Contains(r.status(), "checksum")) << r.status().message();
}

TEST(TrainCheckpoint, MisplacedRankFileIsDataLoss) {
  const std::string dir = MakeTempDir("train-ckpt");
  ASSERT_TRUE(SaveAll(dir, 1, 2).ok());
  ASSERT_TRUE(CommitCheckpoint(dir, 1, {}).ok());
  fs::copy_file(RankPath(dir, 1, 0, 2), RankPath(dir, 1, 1, 2), fs::copy_options::overwrite_existing);
  auto r = LoadRankCheckpoint(dir, 1, 1, 2);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
  EXPECT_TRUE(Contains(r.status(), "rank 0 of 2")) << r.status().message();
}

TEST(TrainCheckpoint, WorldSizeMismatchNamesBothSizes) {
  const std::string dir = MakeTempDir("train-ckpt");
  ASSERT_TRUE(SaveAll(dir, 6, 2).ok());
  ASSERT_TRUE(CommitCheckpoint(dir, 6, {}).ok());
  auto r = LoadRankCheckpoint(dir, 6, 0, 4);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(r.status(), "saved by 2 ranks")) << r.status().message();
  EXPECT_TRUE(Contains(r.status(), "has 4")) << r.status().message();
}

TEST(TrainCheckpoint, StaleFilesOfAnotherWorldBlockTheCommit) {
  const std::string dir = MakeTempDir("train-ckpt");
  ASSERT_TRUE(SaveAll(dir, 2, 1).ok());
  ASSERT_TRUE(SaveAll(dir, 2, 2).ok());
  const Status s = CommitCheckpoint(dir, 2, {});
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(Contains(s, "world sizes 1 and 2")) << s.message();
}

TEST(TrainCheckpoint, BadArgumentsAndLatestFile) {
  const std::string dir = MakeTempDir("train-ckpt");
  EXPECT_EQ(SaveRankCheckpoint(dir, 1, 2, 2, MakeState(0)).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(SaveRankCheckpoint(dir, -1, 0, 1, MakeState(0)).code(), StatusCode::kInvalidArgument);
  RankTrainState dup = MakeState(0);
  dup.tensors.push_back(dup.tensors[0]);
  EXPECT_FALSE(SaveRankCheckpoint(dir, 1, 0, 1, dup).ok());
  EXPECT_FALSE(fs::exists(RankPath(dir, 1, 0, 1)));

  ASSERT_TRUE(SaveAll(dir, 1, 1).ok());
  ASSERT_TRUE(CommitCheckpoint(dir, 1, {}).ok());
  std::ofstream(dir + "/latest", std::ios::trunc) << "two\n";
  auto r = LatestCheckpointStep(dir);
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
  EXPECT_TRUE(Contains(r.status(), dir + "/latest")) << r.status().message();
  std::ofstream(dir + "/latest", std::ios::trunc) << "7\n";  // no step-7 folder
  EXPECT_EQ(LatestCheckpointStep(dir).status().code(), StatusCode::kDataLoss);
}

TEST(TrainCheckpoint, PruneKeepsTheNewestCommittedSteps) {
  const std::string dir = MakeTempDir("train-ckpt");
  for (int64_t step : {1, 2, 3, 4}) {
    ASSERT_TRUE(SaveAll(dir, step, 1).ok());
    ASSERT_TRUE(CommitCheckpoint(dir, step, {{"step", step}}).ok());
  }
  ASSERT_TRUE(SaveRankCheckpoint(dir, 0, 0, 1, MakeState(0)).ok());  // abandoned, older than latest
  ASSERT_TRUE(SaveRankCheckpoint(dir, 5, 0, 1, MakeState(0)).ok());  // in progress, newer than latest
  EXPECT_EQ(PruneCheckpoints(dir, 0).code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(PruneCheckpoints(dir, 2).ok());
  for (int64_t step : {0, 1, 2}) EXPECT_FALSE(fs::exists(dir + "/step-" + std::to_string(step))) << step;
  for (int64_t step : {3, 4, 5}) EXPECT_TRUE(fs::exists(dir + "/step-" + std::to_string(step))) << step;
  EXPECT_EQ(LatestCheckpointStep(dir).value(), 4);
  ExpectSame(LoadRankCheckpoint(dir, 3, 0, 1).value(), MakeState(0));
  EXPECT_TRUE(PruneCheckpoints(MakeTempDir("train-ckpt-empty"), 1).ok());  // nothing committed: nothing to do
}

}  // namespace
}  // namespace baton
