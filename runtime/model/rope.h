// Rotary position embedding frequencies, as transformers computes them
// (float32), including Llama-3.1/3.2's "llama3" frequency scaling.
#pragma once

#include <vector>

#include "runtime/model/model_config.h"

namespace baton {

// inv_freq[i] for i in [0, head_dim / 2).
std::vector<float> RopeInverseFrequencies(const RopeConfig& rope, int head_dim);

}  // namespace baton
