// The fixtures' training reference (reference.json "train" and the grad0 /
// param3 tensors of reference.safetensors) and the run that reproduces it:
// shared by the one-process unit test and the multi-rank layout tests, so
// every layout is held to the same numbers. No gtest here: checks return
// their failures as text.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "runtime/checkpoint/checkpoint.h"
#include "runtime/training/pipeline_trainer.h"

namespace baton::testing {

class TrainReference {
 public:
  // `model`: "gpt2-mini" or "llama-mini" (folders of the test data).
  static StatusOr<TrainReference> Load(const std::string& model);

  const std::string& model_dir() const { return model_dir_; }
  // Two 32-token sequences, labels = inputs.
  const TrainBatch& batch() const { return batch_; }
  // The reference's mean loss before each of the 3 steps and after the last.
  std::vector<double> losses() const;

  // The fixture's three AdamW steps (lr 1e-3, no clipping) through
  // `trainer`, checking the loss before each step and after the last, each
  // step's global gradient norm, the whole gradient of step 1 and the
  // parameters after step 3. Every rank calls it; the root checks the
  // whole-model tensors. Returns the failures (empty: all match).
  // `slack` multiplies every tolerance (a GPU's float32 GEMMs sum in
  // another order than the CPU's BLAS).
  std::vector<std::string> RunAndCheck(PipelineTrainer& trainer, double slack = 1.0) const;

 private:
  void CheckTensors(const ModelConfig& config, const StageWeights& values, const std::string& prefix, double slack,
                    std::vector<std::string>& failures) const;
  std::string model_dir_;
  nlohmann::json reference_;
  Checkpoint tensors_;
  TrainBatch batch_;
};

}  // namespace baton::testing
