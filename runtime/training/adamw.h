// AdamW in float32, step for step as torch.optim.AdamW's single-tensor
// path (the one it takes for CPU tensors):
//   p *= 1 - lr * wd                      (decoupled decay, every parameter)
//   m += (g - m) * (1 - beta1);  v = beta2 v + (1 - beta2) g^2
//   p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// The moments are owned here, one pair per parameter, in the parameters'
// order, on the device of the ops that step them. Not thread-safe.
#pragma once

#include <vector>

#include "runtime/core/tensor.h"
#include "runtime/training/training_ops.h"

namespace baton {

struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;
};

class AdamW {
 public:
  explicit AdamW(const AdamWOptions& options) : options_(options) {}

  // One update of every parameter with its gradient at learning rate `lr`
  // (the schedule's value for this step). Moments are created on the first
  // call; later calls must pass the same tensors in the same order.
  // `ops` does the arithmetic on its device (params, grads: float32 there).
  // `grad_scale` is the clipping coefficient, applied as the gradients are
  // read (they stay unscaled). `compute_copies`, empty or one per parameter
  // (null or undefined: none), receive the updated values rounded to their
  // dtype.
  void Step(TrainingOps& ops, std::vector<Tensor>& params, const std::vector<Tensor>& grads, double lr,
            float grad_scale = 1.0f, const std::vector<Tensor*>& compute_copies = {});
  // The same on float32 host tensors.
  void Step(std::vector<Tensor>& params, const std::vector<Tensor>& grads, double lr);

  // Continues from a saved state (a resumed run): the moments in the
  // parameters' order, and the number of steps already taken.
  void Restore(int64_t step, std::vector<Tensor> exp_avg, std::vector<Tensor> exp_avg_sq);

  int64_t step() const { return step_; }
  const AdamWOptions& options() const { return options_; }
  const std::vector<Tensor>& exp_avg() const { return exp_avg_; }
  const std::vector<Tensor>& exp_avg_sq() const { return exp_avg_sq_; }

 private:
  AdamWOptions options_;
  int64_t step_ = 0;
  std::vector<Tensor> exp_avg_, exp_avg_sq_;
};

}  // namespace baton
