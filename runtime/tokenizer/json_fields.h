// Typed, checked reads of tokenizer.json fields. Every error names the file
// and the field's path, e.g. "tokenizer.json: pre_tokenizer.pretokenizers[1].behavior".
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "runtime/core/status.h"

namespace baton {

// Where a JSON value sits: the file and the path inside it.
class JsonPath {
 public:
  explicit JsonPath(std::string file, std::string path = "") : file_(std::move(file)), path_(std::move(path)) {}
  JsonPath Field(std::string_view key) const;
  JsonPath Index(size_t i) const;
  // "file: a.b[2]" (just "file" at the root).
  std::string ToString() const;
  const std::string& file() const { return file_; }

 private:
  std::string file_;
  std::string path_;
};

// A missing key and a null value both count as absent.
bool HasField(const nlohmann::json& object, std::string_view key);

StatusOr<std::string> GetString(const nlohmann::json& object, std::string_view key, const JsonPath& at);
StatusOr<std::optional<std::string>> GetOptionalString(const nlohmann::json& object, std::string_view key,
                                                       const JsonPath& at);
StatusOr<bool> GetBool(const nlohmann::json& object, std::string_view key, bool fallback, const JsonPath& at);
StatusOr<int64_t> GetInt(const nlohmann::json& object, std::string_view key, const JsonPath& at);
StatusOr<int64_t> GetIntOr(const nlohmann::json& object, std::string_view key, int64_t fallback, const JsonPath& at);
// An array or object field (whose kind the caller checks with the json API).
StatusOr<const nlohmann::json*> GetArray(const nlohmann::json& object, std::string_view key, const JsonPath& at);

// The error for a `type` this runtime does not implement.
Status UnsupportedType(const JsonPath& at, std::string_view type, std::string_view supported);

}  // namespace baton
