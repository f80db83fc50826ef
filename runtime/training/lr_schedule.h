// Learning-rate schedules as transformers' get_*_schedule_with_warmup:
// linear warmup from 0 over `warmup_steps`, then constant or a half-cosine
// decay to 0 at `total_steps`. Steps count from 0 (the first update uses
// LearningRate(0)).
#pragma once

#include <string>

#include "runtime/core/status.h"

namespace baton {

enum class LrScheduleKind { kConstant, kCosine };

struct LrSchedule {
  LrScheduleKind kind = LrScheduleKind::kConstant;
  double base_lr = 1e-3;
  int warmup_steps = 0;
  int total_steps = 1;

  double LearningRate(int step) const;
};

// "constant" or "cosine"; anything else is InvalidArgument naming it.
StatusOr<LrScheduleKind> ParseLrScheduleKind(const std::string& name);

}  // namespace baton
