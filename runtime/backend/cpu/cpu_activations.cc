// Pointwise ops on the CPU: gelu_new, SwiGLU and rotary position embedding.
#include <bit>
#include <cmath>
#include <cstdint>
#include <vector>

#include "runtime/backend/cpu/cpu_backend.h"
#include "runtime/core/fast_exp.h"

namespace baton {

void CpuBackend::GeluNew(Tensor& x) {
  float* v = x.data<float>();
  const int64_t n = x.numel();
  const float k = std::sqrt(2.0f / static_cast<float>(M_PI));
  // 0.5 a (1 + tanh(u)) is a * sigmoid(2u). The sigmoid is written around
  // ExpNonPositive and a sign-bit select, which vectorize where std::tanh
  // (a libm call) did not: it was a seventh of GPT-2's CPU forward.
  constexpr uint32_t kOne = 0x3F800000u;  // 1.0f
#pragma omp parallel for if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const float a = v[i];
    const float z = 2.0f * k * (a + 0.044715f * a * a * a);
    const uint32_t z_bits = std::bit_cast<uint32_t>(z);
    const float e = ExpNonPositive(std::bit_cast<float>(z_bits | 0x80000000u));  // e^-|z|
    // sigmoid(z) = 1 / (1 + e) for z >= 0, e / (1 + e) below.
    const uint32_t negative = 0u - (z_bits >> 31);
    const float numerator = std::bit_cast<float>((std::bit_cast<uint32_t>(e) & negative) | (kOne & ~negative));
    v[i] = a * numerator / (1.0f + e);
  }
}

void CpuBackend::SwiGlu(const Tensor& gate_up, Tensor& out) {
  const int64_t n = gate_up.dim(0), f = out.dim(1);
  CpuCheck(gate_up.dim(1) == 2 * f && out.dim(0) == n, "SwiGlu", "gate_up must be [N, 2F], out [N, F]");
#pragma omp parallel for if (n * f > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const float* gate = gate_up.data<float>() + i * 2 * f;
    const float* up = gate + f;
    float* o = out.data<float>() + i * f;
    for (int64_t j = 0; j < f; ++j) {
      const float g = gate[j];
      o[j] = (g / (1.0f + std::exp(-g))) * up[j];
    }
  }
}

void CpuBackend::Rope(Tensor& qkv, const Tensor& positions, const Tensor& inv_freq, int num_heads, int num_kv_heads,
                      int head_dim) {
  const int64_t n = qkv.dim(0), width = qkv.dim(1);
  const int half = head_dim / 2;
  CpuCheck(inv_freq.numel() == half, "Rope", "inv_freq must have head_dim / 2 entries");
  CpuCheck(width >= static_cast<int64_t>(num_heads + num_kv_heads) * head_dim, "Rope", "qkv too narrow");
  const int32_t* pos = positions.data<int32_t>();
  const float* freq = inv_freq.data<float>();
#pragma omp parallel for if (n > 8)
  for (int64_t i = 0; i < n; ++i) {
    // As transformers: angle = float(position) * inv_freq in float32, and
    // the same cos/sin for both halves of the head (rotate_half).
    std::vector<float> cos_v(half), sin_v(half);
    for (int j = 0; j < half; ++j) {
      const float angle = static_cast<float>(pos[i]) * freq[j];
      cos_v[j] = std::cos(angle);
      sin_v[j] = std::sin(angle);
    }
    float* row = qkv.data<float>() + i * width;
    for (int h = 0; h < num_heads + num_kv_heads; ++h) {
      float* x = row + static_cast<int64_t>(h) * head_dim;
      for (int j = 0; j < half; ++j) {
        const float a = x[j], b = x[j + half];
        x[j] = a * cos_v[j] - b * sin_v[j];
        x[j + half] = b * cos_v[j] + a * sin_v[j];
      }
    }
  }
}

}  // namespace baton
