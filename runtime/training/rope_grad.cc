#include "runtime/training/rope_grad.h"

#include <cmath>
#include <vector>

#include "runtime/backend/cpu/cpu_backend.h"

namespace baton {

void RopeBackward(Tensor& dqkv, const Tensor& positions, const Tensor& inv_freq, int num_heads, int num_kv_heads,
                  int head_dim) {
  const int64_t n = dqkv.dim(0), width = dqkv.dim(1);
  const int half = head_dim / 2;
  CpuCheck(inv_freq.numel() == half, "RopeBackward", "inv_freq must have head_dim / 2 entries");
  CpuCheck(width >= static_cast<int64_t>(num_heads + num_kv_heads) * head_dim, "RopeBackward", "dqkv too narrow");
  const int32_t* pos = positions.data<int32_t>();
  const float* freq = inv_freq.data<float>();
  std::vector<float> cos_v(half), sin_v(half);
  for (int64_t i = 0; i < n; ++i) {
    for (int j = 0; j < half; ++j) {
      const float angle = static_cast<float>(pos[i]) * freq[j];  // the forward's angle, bit for bit
      cos_v[j] = std::cos(angle);
      sin_v[j] = std::sin(angle);
    }
    float* row = dqkv.data<float>() + i * width;
    for (int h = 0; h < num_heads + num_kv_heads; ++h) {
      float* g = row + static_cast<int64_t>(h) * head_dim;
      // forward: y1 = a c - b s, y2 = b c + a s  =>  da = g1 c + g2 s, db = -g1 s + g2 c
      for (int j = 0; j < half; ++j) {
        const float g1 = g[j], g2 = g[j + half];
        g[j] = g1 * cos_v[j] + g2 * sin_v[j];
        g[j + half] = g2 * cos_v[j] - g1 * sin_v[j];
      }
    }
  }
}

}  // namespace baton
