#include "runtime/training/norm_grad.h"

#include <cmath>
#include <vector>

#include "runtime/backend/cpu/cpu_backend.h"

namespace baton {

void LayerNormBackward(const Tensor& x, const Tensor& weight, float eps, const Tensor& dy, Tensor& dx, Tensor& dw,
                       Tensor* db) {
  const int64_t n = x.dim(0), h = x.dim(1);
  CpuCheck(weight.numel() == h && dy.numel() == x.numel() && dx.numel() == x.numel() && dw.numel() == h,
           "LayerNormBackward", "shape mismatch");
  const float* w = weight.data<float>();
  float* gw = dw.data<float>();
  float* gb = db != nullptr && db->defined() && db->numel() ? db->data<float>() : nullptr;
  std::vector<float> xhat(h);
  for (int64_t i = 0; i < n; ++i) {
    const float* row = x.data<float>() + i * h;
    const float* g = dy.data<float>() + i * h;
    float* out = dx.data<float>() + i * h;
    double mean = 0;
    for (int64_t j = 0; j < h; ++j) mean += row[j];
    mean /= static_cast<double>(h);
    double var = 0;
    for (int64_t j = 0; j < h; ++j) var += (row[j] - mean) * (row[j] - mean);
    var /= static_cast<double>(h);
    const double rstd = 1.0 / std::sqrt(var + eps);
    // dx = rstd * (g*w - mean(g*w) - xhat * mean(g*w*xhat))
    double sum_gw = 0, sum_gw_xhat = 0;
    for (int64_t j = 0; j < h; ++j) {
      xhat[j] = static_cast<float>((row[j] - mean) * rstd);
      const double gwj = static_cast<double>(g[j]) * w[j];
      sum_gw += gwj;
      sum_gw_xhat += gwj * xhat[j];
      gw[j] += g[j] * xhat[j];
      if (gb) gb[j] += g[j];
    }
    const double m1 = sum_gw / static_cast<double>(h), m2 = sum_gw_xhat / static_cast<double>(h);
    for (int64_t j = 0; j < h; ++j) {
      out[j] = static_cast<float>(rstd * (static_cast<double>(g[j]) * w[j] - m1 - xhat[j] * m2));
    }
  }
}

void RmsNormBackward(const Tensor& x, const Tensor& weight, float eps, const Tensor& dy, Tensor& dx, Tensor& dw) {
  const int64_t n = x.dim(0), h = x.dim(1);
  CpuCheck(weight.numel() == h && dy.numel() == x.numel() && dx.numel() == x.numel() && dw.numel() == h,
           "RmsNormBackward", "shape mismatch");
  const float* w = weight.data<float>();
  float* gw = dw.data<float>();
  for (int64_t i = 0; i < n; ++i) {
    const float* row = x.data<float>() + i * h;
    const float* g = dy.data<float>() + i * h;
    float* out = dx.data<float>() + i * h;
    double sum_sq = 0;
    for (int64_t j = 0; j < h; ++j) sum_sq += static_cast<double>(row[j]) * row[j];
    const double rstd = 1.0 / std::sqrt(sum_sq / static_cast<double>(h) + eps);
    // y = w * x * r, r = (mean(x^2) + eps)^-1/2: dx = r*g*w - x * r^3 * mean(g*w*x)
    double dot = 0;
    for (int64_t j = 0; j < h; ++j) {
      dot += static_cast<double>(g[j]) * w[j] * row[j];
      gw[j] += g[j] * static_cast<float>(row[j] * rstd);
    }
    const double c = rstd * rstd * rstd * dot / static_cast<double>(h);
    for (int64_t j = 0; j < h; ++j) out[j] = static_cast<float>(rstd * g[j] * w[j] - row[j] * c);
  }
}

void ModelNormBackward(const ModelConfig& c, const Tensor& x, const Tensor& w, const Tensor& dy, Tensor& dx, Tensor& dw,
                       Tensor& db) {
  if (c.norm == NormKind::kLayerNorm) {
    LayerNormBackward(x, w, c.norm_eps, dy, dx, dw, &db);
  } else {
    RmsNormBackward(x, w, c.norm_eps, dy, dx, dw);
  }
}

}  // namespace baton
