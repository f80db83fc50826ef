// LayerNorm and RMSNorm on the CPU. Statistics are accumulated in double:
// cheap at these widths, and it keeps the result within float rounding of
// PyTorch's however the reduction is ordered.
#include <cmath>

#include "runtime/backend/cpu/cpu_backend.h"

namespace baton {

void CpuBackend::LayerNorm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps, Tensor& y) {
  const int64_t n = x.dim(0), h = x.dim(1);
  CpuCheck(weight.numel() == h && y.numel() == x.numel(), "LayerNorm", "shape mismatch");
  const float* w = weight.data<float>();
  const float* b = bias.defined() && bias.numel() ? bias.data<float>() : nullptr;
#pragma omp parallel for if (n > 16)
  for (int64_t i = 0; i < n; ++i) {
    const float* row = x.data<float>() + i * h;
    float* out = y.data<float>() + i * h;
    double mean = 0;
    for (int64_t j = 0; j < h; ++j) mean += row[j];
    mean /= static_cast<double>(h);
    double var = 0;
    for (int64_t j = 0; j < h; ++j) var += (row[j] - mean) * (row[j] - mean);
    var /= static_cast<double>(h);
    const float rstd = static_cast<float>(1.0 / std::sqrt(var + eps));
    const float fmean = static_cast<float>(mean);
    for (int64_t j = 0; j < h; ++j) {
      float v = (row[j] - fmean) * rstd * w[j];
      out[j] = b ? v + b[j] : v;
    }
  }
}

void CpuBackend::RmsNorm(const Tensor& x, const Tensor& weight, float eps, Tensor& y) {
  const int64_t n = x.dim(0), h = x.dim(1);
  CpuCheck(weight.numel() == h && y.numel() == x.numel(), "RmsNorm", "shape mismatch");
  const float* w = weight.data<float>();
#pragma omp parallel for if (n > 16)
  for (int64_t i = 0; i < n; ++i) {
    const float* row = x.data<float>() + i * h;
    float* out = y.data<float>() + i * h;
    double sum_sq = 0;
    for (int64_t j = 0; j < h; ++j) sum_sq += static_cast<double>(row[j]) * row[j];
    // transformers: x * rsqrt(mean(x^2) + eps), then weight * (that).
    const float rstd = static_cast<float>(1.0 / std::sqrt(sum_sq / static_cast<double>(h) + eps));
    for (int64_t j = 0; j < h; ++j) out[j] = w[j] * (row[j] * rstd);
  }
}

}  // namespace baton
