#include "runtime/training/pipeline_schedule.h"

#include <algorithm>

namespace baton {

StatusOr<ScheduleKind> ParseScheduleKind(const std::string& name) {
  if (name == "gpipe") return ScheduleKind::kGPipe;
  if (name == "1f1b") return ScheduleKind::kOneFOneB;
  return Status::InvalidArgument("--schedule '" + name + "': expected gpipe or 1f1b");
}

std::vector<PipeOp> StageSchedule(ScheduleKind kind, int stage, int num_stages, int num_micro_batches) {
  std::vector<PipeOp> ops;
  const int m = num_micro_batches;
  const int warmup = kind == ScheduleKind::kGPipe ? m : std::min(num_stages - stage - 1, m);
  int next_forward = 0, next_backward = 0;
  for (; next_forward < warmup; ++next_forward) ops.push_back({true, next_forward});
  while (next_forward < m) {  // steady 1F1B
    ops.push_back({true, next_forward++});
    ops.push_back({false, next_backward++});
  }
  while (next_backward < m) ops.push_back({false, next_backward++});
  return ops;
}

int PeakLiveMicroBatches(const std::vector<PipeOp>& ops) {
  int live = 0, peak = 0;
  for (const PipeOp& op : ops) {
    live += op.forward ? 1 : -1;
    peak = std::max(peak, live);
  }
  return peak;
}

}  // namespace baton
