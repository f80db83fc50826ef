#include "runtime/training/lr_schedule.h"

#include <algorithm>
#include <cmath>

namespace baton {

double LrSchedule::LearningRate(int step) const {
  if (step < warmup_steps) return base_lr * static_cast<double>(step) / std::max(1, warmup_steps);
  if (kind == LrScheduleKind::kConstant) return base_lr;
  const double progress = static_cast<double>(step - warmup_steps) / std::max(1, total_steps - warmup_steps);
  return base_lr * std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * progress)));
}

StatusOr<LrScheduleKind> ParseLrScheduleKind(const std::string& name) {
  if (name == "constant") return LrScheduleKind::kConstant;
  if (name == "cosine") return LrScheduleKind::kCosine;
  return Status::InvalidArgument("--lr-schedule '" + name + "': expected constant or cosine");
}

}  // namespace baton
