#include "runtime/tokenizer/pattern.h"

namespace baton {

StatusOr<Pattern> Pattern::FromJson(const nlohmann::json& pattern, const JsonPath& at) {
  Pattern p;
  if (HasField(pattern, "String")) {
    BATON_ASSIGN_OR_RETURN(p.literal_, GetString(pattern, "String", at));
    return p;
  }
  if (HasField(pattern, "Regex")) {
    BATON_ASSIGN_OR_RETURN(std::string source, GetString(pattern, "Regex", at));
    BATON_ASSIGN_OR_RETURN(std::unique_ptr<Regex> regex, Regex::Compile(source, at.Field("Regex").ToString()));
    p.regex_ = std::move(regex);
    return p;
  }
  return Status::DataLoss(at.ToString() + " must be {\"String\": ...} or {\"Regex\": ...}");
}

std::vector<std::pair<size_t, size_t>> Pattern::FindAll(std::string_view text) const {
  if (regex_ != nullptr) return regex_->FindAll(text);
  std::vector<std::pair<size_t, size_t>> matches;
  if (literal_.empty()) return matches;
  size_t pos = text.find(literal_);
  while (pos != std::string_view::npos) {
    matches.emplace_back(pos, pos + literal_.size());
    pos = text.find(literal_, pos + literal_.size());
  }
  return matches;
}

std::string Pattern::ReplaceAll(std::string_view text, std::string_view content) const {
  std::string out;
  out.reserve(text.size());
  size_t done = 0;
  for (const auto& [begin, end] : FindAll(text)) {
    out.append(text.substr(done, begin - done));
    out.append(content);
    done = end;
  }
  out.append(text.substr(done));
  return out;
}

}  // namespace baton
