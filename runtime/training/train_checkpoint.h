// Sharded training checkpoints: each rank of a pp x dp job saves its own
// shard (parameters, AdamW moments, anything else as tensors, plus a JSON
// meta such as the data position and RNG state); rank 0 then commits the
// step. Layout:
//
//   DIR/latest                           text "N\n": the newest committed step
//   DIR/step-N/rank-R-of-W.safetensors   rank R's tensors; its meta, step,
//                                        rank, world and a checksum per tensor
//                                        in the header's __metadata__
//   DIR/step-N/meta.json                 job-wide meta; present = committed
//
// Every file is written under a temporary name, fsync'ed and renamed, and
// `latest` is replaced only after meta.json exists, so a job killed at any
// moment leaves the previous committed checkpoint intact; a step folder
// without meta.json is incomplete and never resumed from. A committed step
// is never overwritten (saving into one is an error).
//
// The caller orders the calls across ranks: every rank's SaveRankCheckpoint
// returns, then a barrier, then rank 0's CommitCheckpoint. Functions are
// safe to call concurrently for different ranks; nothing else is shared.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "runtime/core/status.h"
#include "runtime/core/tensor.h"

namespace baton {

// Host tensors of any dtype a safetensors file holds in Baton (F32, I32,
// BF16, F16, I8, I4), unique non-empty names, kept in order.
struct RankTrainState {
  std::vector<std::pair<std::string, Tensor>> tensors;
  nlohmann::json meta;
};

// Writes DIR/step-<step>/rank-<rank>-of-<world>.safetensors (creating the
// folders) and fsyncs it. FailedPrecondition if that step is committed.
Status SaveRankCheckpoint(const std::string& dir, int64_t step, int rank, int world, const RankTrainState& state);

// Rank 0, after every rank saved: checks that the step folder holds the files
// of ranks 0..W-1 of exactly one world size W (FailedPrecondition naming the
// missing ones otherwise), writes DIR/step-<step>/meta.json holding
// `job_meta`, then atomically points DIR/latest at `step`.
Status CommitCheckpoint(const std::string& dir, int64_t step, const nlohmann::json& job_meta);

// The step DIR/latest names. NotFound when DIR holds no committed checkpoint;
// DataLoss if `latest` is malformed or names a step without meta.json.
StatusOr<int64_t> LatestCheckpointStep(const std::string& dir);

// The `job_meta` CommitCheckpoint stored for `step`. NotFound if that step
// is not committed.
StatusOr<nlohmann::json> LoadCheckpointMeta(const std::string& dir, int64_t step);

// Rank `rank` of `world`'s state at a committed `step`, as owned, writable
// host copies (tensors in the order they were saved). InvalidArgument naming
// both sizes if the step was saved by a different number of ranks; DataLoss
// naming the file (and tensor) if a rank file is truncated or corrupt.
StatusOr<RankTrainState> LoadRankCheckpoint(const std::string& dir, int64_t step, int rank, int world);

// Deletes committed steps older than the newest `keep` (>= 1) committed ones
// and incomplete step folders older than DIR/latest. Never touches the
// latest step or folders newer than it. Rank 0 calls it after a commit.
Status PruneCheckpoints(const std::string& dir, int keep);

}  // namespace baton
