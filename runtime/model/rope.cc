#include "runtime/model/rope.h"

#include <cmath>

namespace baton {

static void ApplyLlama3Scaling(const RopeConfig& rope, std::vector<float>& inv);

std::vector<float> RopeInverseFrequencies(const RopeConfig& rope, int head_dim) {
  const int half = head_dim / 2;
  std::vector<float> inv(half);
  for (int i = 0; i < half; ++i) {
    // transformers: 1 / base ** (arange(0, dim, 2).float() / dim), in float32.
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    inv[i] = 1.0f / std::pow(rope.theta, exponent);
  }
  if (rope.llama3_factor > 0) ApplyLlama3Scaling(rope, inv);
  // transformers keeps inv_freq as a module buffer, so casting a model to
  // bf16/f16 (model.to(dtype)) rounds it too; the fixtures were made that way.
  if (rope.inv_freq_dtype != DType::kF32) {
    for (float& f : inv) {
      uint16_t bits;
      ConvertFromF32(&f, 1, rope.inv_freq_dtype, &bits);
      ConvertToF32(&bits, rope.inv_freq_dtype, 1, &f);
    }
  }
  return inv;
}

static void ApplyLlama3Scaling(const RopeConfig& rope, std::vector<float>& inv) {
  const int half = static_cast<int>(inv.size());

  // Llama 3 scaling: long wavelengths (low frequencies) are slowed down by
  // `factor`, short ones kept, and the band between is blended smoothly.
  const float factor = rope.llama3_factor;
  const float low = rope.llama3_low_freq_factor, high = rope.llama3_high_freq_factor;
  const float old_len = static_cast<float>(rope.llama3_original_max_positions);
  const float low_freq_wavelen = old_len / low;
  const float high_freq_wavelen = old_len / high;
  for (int i = 0; i < half; ++i) {
    const float wavelen = 2.0f * static_cast<float>(M_PI) / inv[i];
    if (wavelen > low_freq_wavelen) {
      inv[i] = inv[i] / factor;
    } else if (wavelen >= high_freq_wavelen) {
      const float smooth = (old_len / wavelen - low) / (high - low);
      inv[i] = (1.0f - smooth) * inv[i] / factor + smooth * inv[i];
    }
  }
}

}  // namespace baton
