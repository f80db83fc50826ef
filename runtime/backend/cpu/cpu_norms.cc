// LayerNorm and RMSNorm on the CPU, alone and fused with the residual add
// before them. Statistics are accumulated in double: cheap at these widths,
// and it keeps the result within float rounding of PyTorch's however the
// reduction is ordered.
#include <cmath>

#include "runtime/backend/cpu/cpu_backend.h"

namespace baton {
namespace {

// One row each; LayerNorm, RmsNorm and AddNorm all go through these, so the
// fused op is bit-identical to AddInPlace followed by the norm.
void LayerNormRow(const float* row, const float* w, const float* b, float eps, int64_t h, float* out) {
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

void RmsNormRow(const float* row, const float* w, float eps, int64_t h, float* out) {
  double sum_sq = 0;
  for (int64_t j = 0; j < h; ++j) sum_sq += static_cast<double>(row[j]) * row[j];
  // transformers: x * rsqrt(mean(x^2) + eps), then weight * (that).
  const float rstd = static_cast<float>(1.0 / std::sqrt(sum_sq / static_cast<double>(h) + eps));
  for (int64_t j = 0; j < h; ++j) out[j] = w[j] * (row[j] * rstd);
}

const float* BiasOrNull(const Tensor& bias) { return bias.defined() && bias.numel() ? bias.data<float>() : nullptr; }

}  // namespace

void CpuBackend::LayerNorm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps, Tensor& y) {
  const int64_t n = x.dim(0), h = x.dim(1);
  CpuCheck(weight.numel() == h && y.numel() == x.numel(), "LayerNorm", "shape mismatch");
  const float* w = weight.data<float>();
  const float* b = BiasOrNull(bias);
#pragma omp parallel for if (n > 16)
  for (int64_t i = 0; i < n; ++i) LayerNormRow(x.data<float>() + i * h, w, b, eps, h, y.data<float>() + i * h);
}

void CpuBackend::RmsNorm(const Tensor& x, const Tensor& weight, float eps, Tensor& y) {
  const int64_t n = x.dim(0), h = x.dim(1);
  CpuCheck(weight.numel() == h && y.numel() == x.numel(), "RmsNorm", "shape mismatch");
  const float* w = weight.data<float>();
#pragma omp parallel for if (n > 16)
  for (int64_t i = 0; i < n; ++i) RmsNormRow(x.data<float>() + i * h, w, eps, h, y.data<float>() + i * h);
}

void CpuBackend::AddNorm(NormOp op, const Tensor& x, Tensor& residual, const Tensor& weight, const Tensor& bias,
                         float eps, Tensor& normed) {
  CpuCheck(residual.ndim() == 2, "AddNorm", "residual must be [rows, features]");
  const int64_t n = residual.dim(0), h = residual.dim(1);
  CpuCheck(x.numel() == residual.numel(), "AddNorm", "x and residual differ in size");
  CpuCheck(weight.numel() == h && normed.numel() == residual.numel(), "AddNorm", "shape mismatch");
  const float* w = weight.data<float>();
  const float* b = BiasOrNull(bias);
#pragma omp parallel for if (n > 16)
  for (int64_t i = 0; i < n; ++i) {
    float* row = residual.data<float>() + i * h;
    const float* add = x.data<float>() + i * h;
    for (int64_t j = 0; j < h; ++j) row[j] += add[j];  // as AddInPlace
    if (op == NormOp::kLayerNorm) {
      LayerNormRow(row, w, b, eps, h, normed.data<float>() + i * h);
    } else {
      RmsNormRow(row, w, eps, h, normed.data<float>() + i * h);
    }
  }
}

}  // namespace baton
