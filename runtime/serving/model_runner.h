// ModelRunner: how the generation loop reaches the model, whether it lives
// in this process (one stage) or across a pipeline of ranks.
//
// Submit starts a forward step; Collect returns the logits of the oldest
// submitted step not yet collected (steps finish in submission order). A
// pipeline keeps several steps in flight between the two calls, which is
// what keeps every stage busy. Used by one thread.
#pragma once

#include "runtime/core/tensor.h"
#include "runtime/model/model_config.h"
#include "runtime/model/step_plan.h"

namespace baton {

class ModelRunner {
 public:
  virtual ~ModelRunner() = default;
  virtual const ModelConfig& config() const = 0;
  // How many steps may be in flight at once for the pipeline to stay busy
  // (1 for a single stage, the number of stages for a pipeline).
  virtual int preferred_in_flight() const = 0;
  virtual Status Submit(const StepPlan& plan) = 0;
  // float32 host logits [rows of the plan's LogitRows(), vocab].
  virtual StatusOr<Tensor> Collect() = 0;
};

}  // namespace baton
