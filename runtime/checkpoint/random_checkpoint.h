// Random-weight model folders in Hugging Face layout, for `baton make-model`:
// benchmarks and tests of real-sized models without downloading weights.
//
// WriteRandomCheckpoint writes config.json, generation_config.json and
// model.safetensors with the tensor names transformers' save_pretrained
// uses for gpt2, llama, mistral and qwen2, so the folder loads exactly like
// a downloaded one. Values: matrices and biases are normal-ish (a sum of four
// uniforms) with std = initializer_range, norm weights 1, norm biases 0.
// The bytes depend only on the config, dtype and seed. Memory stays small
// whatever the model size: weights are generated in chunks and streamed.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "runtime/checkpoint/builtin_model_configs.h"
#include "runtime/core/dtype.h"
#include "runtime/core/status.h"

namespace baton {

struct RandomCheckpointOptions {
  nlohmann::json config;       // a config.json object, e.g. from BuiltinModelConfig
  DType dtype = DType::kBF16;  // F32, F16 or BF16; also written to config.json
  uint64_t seed = 0;
  std::string out_dir;   // created if missing; existing files are replaced
  bool progress = true;  // "make-model: 3.1/16.1 GB" on stderr, once the write takes a while
};

// InvalidArgument naming the config field that is missing or wrong;
// Unimplemented for a model_type other than gpt2, llama, mistral, qwen2;
// an I/O error naming the path.
Status WriteRandomCheckpoint(const RandomCheckpointOptions& options);

}  // namespace baton
