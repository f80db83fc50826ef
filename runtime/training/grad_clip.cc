#include "runtime/training/grad_clip.h"

#include <algorithm>
#include <cmath>

namespace baton {

double GlobalGradNorm(const std::vector<Tensor>& grads) {
  double sum_sq = 0;
  for (const Tensor& g : grads) {
    const float* v = g.data<float>();
    for (int64_t i = 0; i < g.numel(); ++i) sum_sq += static_cast<double>(v[i]) * v[i];
  }
  return std::sqrt(sum_sq);
}

float ClipCoefficient(double norm, double max_norm) {
  if (max_norm <= 0) return 1.0f;
  return static_cast<float>(std::min(1.0, max_norm / (norm + 1e-6)));
}

void ScaleTensors(std::vector<Tensor>& tensors, float factor) {
  for (Tensor& t : tensors) {
    float* v = t.data<float>();
    for (int64_t i = 0; i < t.numel(); ++i) v[i] *= factor;
  }
}

double ClipGradNorm(std::vector<Tensor>& grads, double max_norm) {
  const double norm = GlobalGradNorm(grads);
  const float coef = ClipCoefficient(norm, max_norm);
  if (coef < 1.0f) ScaleTensors(grads, coef);
  return norm;
}

}  // namespace baton
