// The order in which one pipeline stage runs the forward and backward
// passes of a step's micro-batches.
//
//  - GPipe: every forward, then every backward. Simple; a stage holds the
//    activations of all M micro-batches at once.
//  - 1F1B (PipeDream-flush): stage s runs P - s - 1 warm-up forwards, then
//    alternates one forward and one backward, then drains the backwards.
//    At most P - s micro-batches are alive on stage s, whatever M is; the
//    bubble is the same as GPipe's.
// Sends never block (they are non-blocking), so with each stage following
// its list in order, every receive's sender gets there: no deadlock.
#pragma once

#include <string>
#include <vector>

#include "runtime/core/status.h"

namespace baton {

enum class ScheduleKind { kGPipe, kOneFOneB };

StatusOr<ScheduleKind> ParseScheduleKind(const std::string& name);  // "gpipe" | "1f1b"

struct PipeOp {
  bool forward;
  int micro_batch;
  bool operator==(const PipeOp&) const = default;
};

std::vector<PipeOp> StageSchedule(ScheduleKind kind, int stage, int num_stages, int num_micro_batches);

// The most micro-batches whose activations are alive at once in `ops`.
int PeakLiveMicroBatches(const std::vector<PipeOp>& ops);

}  // namespace baton
