// SamplerBank: the samplers of the sequences in flight, kept by the stage
// that computes logits (the last one), so that only token ids travel back
// to rank 0. A sequence is registered by the step plan that first carries
// its sampling parameters, sees every token of its later plans (the
// repetition penalty needs the whole history), and is dropped when a plan
// lists it as released. Thread-compatible.
#pragma once

#include <map>
#include <vector>

#include "runtime/model/step_plan.h"
#include "runtime/sampling/sampler.h"

namespace baton {

class SamplerBank {
 public:
  // One token per sequence of `plan`, from logits [sequences, vocab] (the
  // plan's logit rows, one per sequence). Registers, updates and releases
  // sequences as the plan says.
  StatusOr<std::vector<int32_t>> Sample(const StepPlan& plan, const Tensor& logits);
  size_t size() const { return sequences_.size(); }

 private:
  struct Entry {
    Sampler sampler;
    std::vector<int32_t> history;  // every token seen: prompt and generated
  };
  std::map<int64_t, Entry> sequences_;
};

}  // namespace baton
