#include "runtime/training/adamw.h"

#include <cmath>

#include "runtime/backend/cpu/cpu_backend.h"

namespace baton {

void AdamW::Step(std::vector<Tensor>& params, const std::vector<Tensor>& grads, double lr) {
  CpuCheck(params.size() == grads.size(), "AdamW", "one gradient per parameter");
  if (exp_avg_.empty()) {
    for (const Tensor& p : params) {
      exp_avg_.push_back(Tensor::Zeros(p.shape(), DType::kF32));
      exp_avg_sq_.push_back(Tensor::Zeros(p.shape(), DType::kF32));
    }
  }
  CpuCheck(exp_avg_.size() == params.size(), "AdamW", "the parameter list changed between steps");
  ++step_;
  const double t = static_cast<double>(step_);
  // Scalars as torch forms them: Python floats (double), handed to float
  // kernels, which round them to float.
  const float decay = static_cast<float>(1.0 - lr * options_.weight_decay);
  const float one_minus_b1 = static_cast<float>(1.0 - options_.beta1);
  const float b2 = static_cast<float>(options_.beta2);
  const float one_minus_b2 = static_cast<float>(1.0 - options_.beta2);
  const float step_size = static_cast<float>(lr / (1.0 - std::pow(options_.beta1, t)));
  const float bc2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(options_.beta2, t)));
  const float eps = static_cast<float>(options_.eps);
  for (size_t i = 0; i < params.size(); ++i) {
    CpuCheck(params[i].numel() == grads[i].numel(), "AdamW", "gradient and parameter differ in size");
    float* p = params[i].data<float>();
    const float* g = grads[i].data<float>();
    float* m = exp_avg_[i].data<float>();
    float* v = exp_avg_sq_[i].data<float>();
    const int64_t n = params[i].numel();
    for (int64_t j = 0; j < n; ++j) {
      p[j] *= decay;
      m[j] += (g[j] - m[j]) * one_minus_b1;
      v[j] = v[j] * b2 + one_minus_b2 * g[j] * g[j];
      const float denom = std::sqrt(v[j]) / bc2_sqrt + eps;
      p[j] -= step_size * (m[j] / denom);
    }
  }
}

void AdamW::Restore(int64_t step, std::vector<Tensor> exp_avg, std::vector<Tensor> exp_avg_sq) {
  CpuCheck(exp_avg.size() == exp_avg_sq.size(), "AdamW", "one second moment per first moment");
  step_ = step;
  exp_avg_ = std::move(exp_avg);
  exp_avg_sq_ = std::move(exp_avg_sq);
}

}  // namespace baton
