// Built-in model shapes for `baton make-model`: the config.json of well-known
// architectures (Llama 3.2 1B, Llama 3 8B, GPT-2 124M, Qwen2 0.5B, Mistral
// 7B v0.2) and tiny variants of each family for tests, so a random-weight
// model of a real size can be made without downloading anything.
//
// Each config is a complete Hugging Face config.json object as transformers
// would write it, with the rope settings in both spellings (v4's top-level
// "rope_theta"/"rope_scaling" and v5's "rope_parameters") so either reader
// accepts it. The "dtype"/"torch_dtype" fields are left to the writer.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/core/status.h"

namespace baton {

// InvalidArgument listing the known names for an unknown one.
StatusOr<nlohmann::json> BuiltinModelConfig(std::string_view shape_name);
std::vector<std::string> BuiltinModelShapeNames();

}  // namespace baton
