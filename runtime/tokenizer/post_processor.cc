#include "runtime/tokenizer/post_processor.h"

#include <string>
#include <utility>

namespace baton {
namespace {

// The single-sequence template: ids to put before and after the sequence.
class TemplatePostProcessor : public PostProcessor {
 public:
  TemplatePostProcessor(std::vector<int32_t> before, std::vector<int32_t> after)
      : before_(std::move(before)), after_(std::move(after)) {}
  void AddSpecialTokens(std::vector<int32_t>* ids) const override {
    ids->insert(ids->begin(), before_.begin(), before_.end());
    ids->insert(ids->end(), after_.begin(), after_.end());
  }

 private:
  std::vector<int32_t> before_;
  std::vector<int32_t> after_;
};

class SequencePostProcessor : public PostProcessor {
 public:
  explicit SequencePostProcessor(std::vector<std::unique_ptr<PostProcessor>> steps) : steps_(std::move(steps)) {}
  void AddSpecialTokens(std::vector<int32_t>* ids) const override {
    for (const auto& step : steps_) step->AddSpecialTokens(ids);
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> steps_;
};

// One template item: the sequence itself, or the name of a special token.
struct TemplateItem {
  bool is_sequence;
  std::string special_token;
};

StatusOr<std::vector<TemplateItem>> ParseTemplate(const nlohmann::json& single, const JsonPath& at) {
  std::vector<TemplateItem> items;
  if (single.is_string()) {
    // The short form: "<s> $A" ($A, $B, $0, $1, with an optional ":type_id").
    const std::string& s = single.get_ref<const std::string&>();
    size_t pos = 0;
    while (pos < s.size()) {
      const size_t end = std::min(s.find(' ', pos), s.size());
      std::string piece = s.substr(pos, end - pos);
      pos = end + 1;
      if (piece.empty()) continue;
      if (piece[0] == '$') {
        items.push_back({true, ""});
      } else {
        items.push_back({false, piece.substr(0, piece.find(':'))});
      }
    }
    return items;
  }
  if (!single.is_array()) return Status::DataLoss(at.ToString() + " must be an array or a string");
  for (size_t i = 0; i < single.size(); ++i) {
    const nlohmann::json& item = single[i];
    if (HasField(item, "Sequence")) {
      items.push_back({true, ""});
    } else if (HasField(item, "SpecialToken")) {
      BATON_ASSIGN_OR_RETURN(std::string id, GetString(item["SpecialToken"], "id", at.Index(i).Field("SpecialToken")));
      items.push_back({false, std::move(id)});
    } else {
      return Status::DataLoss(at.Index(i).ToString() + " must be {\"Sequence\": ...} or {\"SpecialToken\": ...}");
    }
  }
  return items;
}

StatusOr<std::unique_ptr<PostProcessor>> TemplateFromJson(const nlohmann::json& j, const JsonPath& at) {
  if (!HasField(j, "single")) return Status::DataLoss(at.Field("single").ToString() + " is missing");
  BATON_ASSIGN_OR_RETURN(std::vector<TemplateItem> items, ParseTemplate(j["single"], at.Field("single")));
  const JsonPath specials_at = at.Field("special_tokens");
  std::vector<int32_t> before, after;
  bool seen_sequence = false;
  for (const TemplateItem& item : items) {
    if (item.is_sequence) {
      seen_sequence = true;
      continue;
    }
    if (!HasField(j, "special_tokens") || !HasField(j["special_tokens"], item.special_token)) {
      return Status::DataLoss(specials_at.ToString() + " has no entry for '" + item.special_token +
                              "' used by the template");
    }
    const nlohmann::json& entry = j["special_tokens"][item.special_token];
    BATON_ASSIGN_OR_RETURN(const nlohmann::json* ids, GetArray(entry, "ids", specials_at.Field(item.special_token)));
    for (const nlohmann::json& id : *ids) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0) {
        return Status::DataLoss(specials_at.Field(item.special_token).Field("ids").ToString() +
                                " must hold non-negative integers");
      }
      (seen_sequence ? after : before).push_back(static_cast<int32_t>(id.get<int64_t>()));
    }
  }
  return std::unique_ptr<PostProcessor>(new TemplatePostProcessor(std::move(before), std::move(after)));
}

// BertProcessing / RobertaProcessing: "cls": [token, id] before, "sep" after.
StatusOr<std::unique_ptr<PostProcessor>> ClsSepFromJson(const nlohmann::json& j, const JsonPath& at) {
  std::vector<int32_t> ids;
  for (const char* key : {"cls", "sep"}) {
    if (!HasField(j, key) || !j[key].is_array() || j[key].size() != 2 || !j[key][1].is_number_integer()) {
      return Status::DataLoss(at.Field(key).ToString() + " must be [token, id]");
    }
    ids.push_back(static_cast<int32_t>(j[key][1].get<int64_t>()));
  }
  return std::unique_ptr<PostProcessor>(new TemplatePostProcessor({ids[0]}, {ids[1]}));
}

}  // namespace

StatusOr<std::unique_ptr<PostProcessor>> PostProcessorFromJson(const nlohmann::json& j, const JsonPath& at) {
  if (j.is_null()) return std::unique_ptr<PostProcessor>();
  BATON_ASSIGN_OR_RETURN(std::string type, GetString(j, "type", at));
  if (type == "TemplateProcessing") return TemplateFromJson(j, at);
  if (type == "ByteLevel") return std::unique_ptr<PostProcessor>();  // only trims offsets
  if (type == "BertProcessing" || type == "RobertaProcessing") return ClsSepFromJson(j, at);
  if (type == "Sequence") {
    BATON_ASSIGN_OR_RETURN(const nlohmann::json* items, GetArray(j, "processors", at));
    std::vector<std::unique_ptr<PostProcessor>> steps;
    for (size_t i = 0; i < items->size(); ++i) {
      BATON_ASSIGN_OR_RETURN(auto step, PostProcessorFromJson((*items)[i], at.Field("processors").Index(i)));
      if (step != nullptr) steps.push_back(std::move(step));
    }
    return std::unique_ptr<PostProcessor>(new SequencePostProcessor(std::move(steps)));
  }
  return UnsupportedType(at, type, "TemplateProcessing, ByteLevel, BertProcessing, RobertaProcessing, Sequence");
}

}  // namespace baton
