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

double ClipGradNorm(std::vector<Tensor>& grads, double max_norm) {
  const double norm = GlobalGradNorm(grads);
  if (max_norm <= 0) return norm;
  const float coef = static_cast<float>(std::min(1.0, max_norm / (norm + 1e-6)));
  if (coef < 1.0f) {
    for (Tensor& g : grads) {
      float* v = g.data<float>();
      for (int64_t i = 0; i < g.numel(); ++i) v[i] *= coef;
    }
  }
  return norm;
}

}  // namespace baton
