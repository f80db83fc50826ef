// Post-processors add the special tokens a model expects around an encoded
// sequence (Llama's BOS via TemplateProcessing). Only single sequences are
// encoded here, so pair templates are read but not used.
// Immutable after construction; thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "runtime/core/status.h"
#include "runtime/tokenizer/json_fields.h"

namespace baton {

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  // Wraps the ids of one encoded sequence (called only when special tokens are wanted).
  virtual void AddSpecialTokens(std::vector<int32_t>* ids) const = 0;
};

// Builds the post-processor described at `at`; null JSON gives nullptr.
// Types: TemplateProcessing, ByteLevel (adds nothing), BertProcessing,
// RobertaProcessing, Sequence. Others are Unimplemented.
StatusOr<std::unique_ptr<PostProcessor>> PostProcessorFromJson(const nlohmann::json& j, const JsonPath& at);

}  // namespace baton
