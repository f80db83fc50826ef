#include "runtime/training/activation_grad.h"

#include <cmath>

#include "runtime/backend/cpu/cpu_backend.h"

namespace baton {

void GeluNewBackward(const Tensor& x, const Tensor& dy, Tensor& dx) {
  CpuCheck(x.numel() == dy.numel() && dx.numel() == x.numel(), "GeluNewBackward", "shape mismatch");
  const float* a = x.data<float>();
  const float* g = dy.data<float>();
  float* out = dx.data<float>();
  const float k = std::sqrt(2.0f / static_cast<float>(M_PI));
  const int64_t n = x.numel();
  for (int64_t i = 0; i < n; ++i) {
    const float v = a[i];
    const float t = std::tanh(k * (v + 0.044715f * v * v * v));
    const float du = k * (1.0f + 3.0f * 0.044715f * v * v);
    out[i] = g[i] * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * du);
  }
}

void SwiGluBackward(const Tensor& gate_up, const Tensor& dout, Tensor& dgate_up) {
  const int64_t n = gate_up.dim(0), f = dout.dim(1);
  CpuCheck(gate_up.dim(1) == 2 * f && dout.dim(0) == n && dgate_up.numel() == gate_up.numel(), "SwiGluBackward",
           "gate_up [N, 2F], dout [N, F]");
  for (int64_t i = 0; i < n; ++i) {
    const float* gate = gate_up.data<float>() + i * 2 * f;
    const float* up = gate + f;
    const float* g = dout.data<float>() + i * f;
    float* dgate = dgate_up.data<float>() + i * 2 * f;
    float* dup = dgate + f;
    for (int64_t j = 0; j < f; ++j) {
      const float s = 1.0f / (1.0f + std::exp(-gate[j]));
      const float silu = gate[j] * s;
      dup[j] = g[j] * silu;
      dgate[j] = g[j] * up[j] * s * (1.0f + gate[j] * (1.0f - s));
    }
  }
}

}  // namespace baton
