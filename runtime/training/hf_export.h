// Writes a trained model as a Hugging Face folder that `baton generate` and
// transformers load: model.safetensors (HF names and layout, in the source
// checkpoint's dtype), plus config.json, generation_config.json and the
// tokenizer files copied from the source folder.
#pragma once

#include <string>

#include "runtime/core/status.h"
#include "runtime/training/training_model.h"

namespace baton {

Status ExportHfModel(const TrainingModel& model, const std::string& source_dir, const std::string& out_dir);

}  // namespace baton
