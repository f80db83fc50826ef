// A ModelRunner that passes every call to another, counting the plans that
// continue the one before (the scheduler's run-ahead) and the most steps in
// flight at once. Header-only: the CPU and GPU test binaries share it.
#pragma once

#include <algorithm>

#include "runtime/serving/model_runner.h"

namespace baton::testing {

class CountingRunner final : public ModelRunner {
 public:
  explicit CountingRunner(ModelRunner& inner) : inner_(inner) {}
  const ModelConfig& config() const override { return inner_.config(); }
  int preferred_in_flight() const override { return inner_.preferred_in_flight(); }
  bool can_run_ahead() const override { return inner_.can_run_ahead(); }
  Status Submit(const StepPlan& plan) override {
    if (plan.continues_previous) ++continuations;
    max_in_flight = std::max(max_in_flight, ++in_flight_);
    return inner_.Submit(plan);
  }
  StatusOr<StepOutput> Collect() override {
    --in_flight_;
    return inner_.Collect();
  }
  int continuations = 0;
  int max_in_flight = 0;

 private:
  ModelRunner& inner_;
  int in_flight_ = 0;
};

}  // namespace baton::testing
