// Writes a trained model as a Hugging Face folder that `baton generate` and
// transformers load: model.safetensors (HF names and layout, in the source
// checkpoint's dtype), plus config.json, generation_config.json and the
// tokenizer files copied from the source folder.
#pragma once

#include <string>

#include "runtime/core/status.h"
#include "runtime/model/model_config.h"
#include "runtime/model/model_weights.h"

namespace baton {

// `weights`: the whole model (all layers), float32.
Status ExportHfModel(const ModelConfig& config, const StageWeights& weights, const std::string& source_dir,
                     const std::string& out_dir);

}  // namespace baton
