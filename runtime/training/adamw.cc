#include "runtime/training/adamw.h"

#include <cmath>

#include "runtime/training/cpu_training_ops.h"

namespace baton {

void AdamW::Step(TrainingOps& ops, std::vector<Tensor>& params, const std::vector<Tensor>& grads, double lr,
                 float grad_scale, const std::vector<Tensor*>& compute_copies) {
  CpuCheck(params.size() == grads.size(), "AdamW", "one gradient per parameter");
  CpuCheck(compute_copies.empty() || compute_copies.size() == params.size(), "AdamW",
           "compute copies: none, or one per parameter");
  if (exp_avg_.empty()) {
    for (const Tensor& p : params) {
      exp_avg_.push_back(ops.ZerosF32(p.shape()));
      exp_avg_sq_.push_back(ops.ZerosF32(p.shape()));
    }
  }
  CpuCheck(exp_avg_.size() == params.size(), "AdamW", "the parameter list changed between steps");
  ++step_;
  const double t = static_cast<double>(step_);
  // Scalars as torch forms them: Python floats (double), handed to float
  // kernels, which round them to float.
  AdamWScalars s;
  s.decay = static_cast<float>(1.0 - lr * options_.weight_decay);
  s.one_minus_beta1 = static_cast<float>(1.0 - options_.beta1);
  s.beta2 = static_cast<float>(options_.beta2);
  s.one_minus_beta2 = static_cast<float>(1.0 - options_.beta2);
  s.step_size = static_cast<float>(lr / (1.0 - std::pow(options_.beta1, t)));
  s.bias_correction2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(options_.beta2, t)));
  s.eps = static_cast<float>(options_.eps);
  s.grad_scale = grad_scale;
  for (size_t i = 0; i < params.size(); ++i) {
    CpuCheck(params[i].numel() == grads[i].numel(), "AdamW", "gradient and parameter differ in size");
    ops.AdamWUpdate(params[i], grads[i], exp_avg_[i], exp_avg_sq_[i], s,
                    compute_copies.empty() ? nullptr : compute_copies[i]);
  }
}

void AdamW::Step(std::vector<Tensor>& params, const std::vector<Tensor>& grads, double lr) {
  CpuTrainingOps cpu;
  Step(cpu, params, grads, lr);
}

void AdamW::Restore(int64_t step, std::vector<Tensor> exp_avg, std::vector<Tensor> exp_avg_sq) {
  CpuCheck(exp_avg.size() == exp_avg_sq.size(), "AdamW", "one second moment per first moment");
  step_ = step;
  exp_avg_ = std::move(exp_avg);
  exp_avg_sq_ = std::move(exp_avg_sq);
}

}  // namespace baton
