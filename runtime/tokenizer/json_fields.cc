#include "runtime/tokenizer/json_fields.h"

namespace baton {

JsonPath JsonPath::Field(std::string_view key) const {
  return JsonPath(file_, path_.empty() ? std::string(key) : path_ + "." + std::string(key));
}

JsonPath JsonPath::Index(size_t i) const { return JsonPath(file_, path_ + "[" + std::to_string(i) + "]"); }

std::string JsonPath::ToString() const { return path_.empty() ? file_ : file_ + ": " + path_; }

bool HasField(const nlohmann::json& object, std::string_view key) {
  if (!object.is_object()) return false;
  auto it = object.find(key);
  return it != object.end() && !it->is_null();
}

namespace {

Status Missing(const JsonPath& at, std::string_view key) {
  return Status::DataLoss(at.Field(key).ToString() + " is missing");
}

Status WrongKind(const JsonPath& at, std::string_view key, std::string_view expected, const nlohmann::json& got) {
  return Status::DataLoss(at.Field(key).ToString() + " must be " + std::string(expected) + " (got " + got.type_name() +
                          ")");
}

}  // namespace

StatusOr<std::string> GetString(const nlohmann::json& object, std::string_view key, const JsonPath& at) {
  if (!HasField(object, key)) return Missing(at, key);
  const nlohmann::json& v = object.find(key).value();
  if (!v.is_string()) return WrongKind(at, key, "a string", v);
  return v.get<std::string>();
}

StatusOr<std::optional<std::string>> GetOptionalString(const nlohmann::json& object, std::string_view key,
                                                       const JsonPath& at) {
  if (!HasField(object, key)) return std::optional<std::string>();
  const nlohmann::json& v = object.find(key).value();
  if (!v.is_string()) return WrongKind(at, key, "a string", v);
  return std::optional<std::string>(v.get<std::string>());
}

StatusOr<bool> GetBool(const nlohmann::json& object, std::string_view key, bool fallback, const JsonPath& at) {
  if (!HasField(object, key)) return fallback;
  const nlohmann::json& v = object.find(key).value();
  if (!v.is_boolean()) return WrongKind(at, key, "true or false", v);
  return v.get<bool>();
}

StatusOr<int64_t> GetInt(const nlohmann::json& object, std::string_view key, const JsonPath& at) {
  if (!HasField(object, key)) return Missing(at, key);
  const nlohmann::json& v = object.find(key).value();
  if (!v.is_number_integer()) return WrongKind(at, key, "an integer", v);
  return v.get<int64_t>();
}

StatusOr<int64_t> GetIntOr(const nlohmann::json& object, std::string_view key, int64_t fallback, const JsonPath& at) {
  if (!HasField(object, key)) return fallback;
  return GetInt(object, key, at);
}

StatusOr<const nlohmann::json*> GetArray(const nlohmann::json& object, std::string_view key, const JsonPath& at) {
  if (!HasField(object, key)) return Missing(at, key);
  const nlohmann::json& v = object.find(key).value();
  if (!v.is_array()) return WrongKind(at, key, "an array", v);
  return &v;
}

Status UnsupportedType(const JsonPath& at, std::string_view type, std::string_view supported) {
  return Status::Unimplemented(at.Field("type").ToString() + " '" + std::string(type) +
                               "' is not supported (supported: " + std::string(supported) + ")");
}

}  // namespace baton
