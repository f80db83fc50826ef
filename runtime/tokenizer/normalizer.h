// Normalizers: the text rewrites tokenizer.json applies to each stretch of
// input between added tokens, before pre-tokenization (Llama-2's
// Prepend("▁") + Replace(" ", "▁") is the common one).
// Immutable after construction; safe to share between threads.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "runtime/core/status.h"
#include "runtime/tokenizer/json_fields.h"

namespace baton {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual std::string Normalize(std::string_view text) const = 0;
};

// Builds the normalizer described at `at`; null JSON gives nullptr (none).
// Types: Sequence, Prepend, Replace, Strip, NFC. Others are Unimplemented.
StatusOr<std::unique_ptr<Normalizer>> NormalizerFromJson(const nlohmann::json& j, const JsonPath& at);

}  // namespace baton
