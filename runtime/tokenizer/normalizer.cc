#include "runtime/tokenizer/normalizer.h"

#include <vector>

#include "runtime/tokenizer/pattern.h"
#include "runtime/tokenizer/unicode_nfc.h"
#include "runtime/tokenizer/utf8.h"

namespace baton {
namespace {

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> steps) : steps_(std::move(steps)) {}
  std::string Normalize(std::string_view text) const override {
    std::string s(text);
    for (const auto& step : steps_) s = step->Normalize(s);
    return s;
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

class PrependNormalizer : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  std::string Normalize(std::string_view text) const override {
    if (text.empty()) return std::string();  // as HF: nothing to attach the prefix to
    return prefix_ + std::string(text);
  }

 private:
  std::string prefix_;
};

class ReplaceNormalizer : public Normalizer {
 public:
  ReplaceNormalizer(Pattern pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  std::string Normalize(std::string_view text) const override { return pattern_.ReplaceAll(text, content_); }

 private:
  Pattern pattern_;
  std::string content_;
};

// Strips Unicode whitespace from either end.
class StripNormalizer : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  std::string Normalize(std::string_view text) const override {
    size_t begin = 0;
    size_t end = text.size();
    if (left_) {
      while (begin < end) {
        size_t next = begin;
        if (!IsUnicodeWhitespace(DecodeUtf8(text, &next))) break;
        begin = next;
      }
    }
    if (right_) {
      while (end > begin) {
        size_t start = end - 1;  // back up to the last character's first byte
        while (start > begin && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
        size_t next = start;
        if (!IsUnicodeWhitespace(DecodeUtf8(text, &next)) || next != end) break;
        end = start;
      }
    }
    return std::string(text.substr(begin, end - begin));
  }

 private:
  bool left_;
  bool right_;
};

class NfcNormalizer : public Normalizer {
 public:
  std::string Normalize(std::string_view text) const override { return ToNfc(text); }
};

}  // namespace

StatusOr<std::unique_ptr<Normalizer>> NormalizerFromJson(const nlohmann::json& j, const JsonPath& at) {
  if (j.is_null()) return std::unique_ptr<Normalizer>();
  BATON_ASSIGN_OR_RETURN(std::string type, GetString(j, "type", at));
  if (type == "Sequence") {
    BATON_ASSIGN_OR_RETURN(const nlohmann::json* items, GetArray(j, "normalizers", at));
    std::vector<std::unique_ptr<Normalizer>> steps;
    for (size_t i = 0; i < items->size(); ++i) {
      BATON_ASSIGN_OR_RETURN(auto step, NormalizerFromJson((*items)[i], at.Field("normalizers").Index(i)));
      if (step != nullptr) steps.push_back(std::move(step));
    }
    return std::unique_ptr<Normalizer>(new SequenceNormalizer(std::move(steps)));
  }
  if (type == "Prepend") {
    BATON_ASSIGN_OR_RETURN(std::string prefix, GetString(j, "prepend", at));
    return std::unique_ptr<Normalizer>(new PrependNormalizer(std::move(prefix)));
  }
  if (type == "Replace") {
    if (!HasField(j, "pattern")) return Status::DataLoss(at.Field("pattern").ToString() + " is missing");
    BATON_ASSIGN_OR_RETURN(Pattern pattern, Pattern::FromJson(j["pattern"], at.Field("pattern")));
    BATON_ASSIGN_OR_RETURN(std::string content, GetString(j, "content", at));
    return std::unique_ptr<Normalizer>(new ReplaceNormalizer(std::move(pattern), std::move(content)));
  }
  if (type == "Strip") {
    BATON_ASSIGN_OR_RETURN(bool left, GetBool(j, "strip_left", true, at));
    BATON_ASSIGN_OR_RETURN(bool right, GetBool(j, "strip_right", true, at));
    return std::unique_ptr<Normalizer>(new StripNormalizer(left, right));
  }
  if (type == "NFC") return std::unique_ptr<Normalizer>(new NfcNormalizer());
  return UnsupportedType(at, type, "Sequence, Prepend, Replace, Strip, NFC");
}

}  // namespace baton
