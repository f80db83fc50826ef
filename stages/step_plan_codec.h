// StepPlan on the wire: the small control message that travels with each
// micro-batch's activations from stage to stage. A plan with no sequences
// is the "stop" message that ends a pipeline worker.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/model/step_plan.h"

namespace baton {

std::vector<uint8_t> EncodeStepPlan(const StepPlan& plan);
// DataLoss when the bytes are not a plan this version wrote.
StatusOr<StepPlan> DecodeStepPlan(const std::vector<uint8_t>& bytes);

}  // namespace baton
