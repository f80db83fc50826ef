#include "runtime/tokenizer/pre_tokenizer.h"

#include <utility>

#include "runtime/tokenizer/byte_level.h"
#include "runtime/tokenizer/pattern.h"
#include "runtime/tokenizer/regex.h"

namespace baton {
namespace {

// GPT-2's split: contractions, letters, digits, other symbols, whitespace.
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// What Split does with the matched stretches (HF SplitDelimiterBehavior).
enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

using Range = std::pair<size_t, size_t>;

// Turns match positions into the byte ranges of the pieces, following HF's
// NormalizedString::split.
std::vector<Range> SplitRanges(const std::vector<Range>& found, size_t size, SplitBehavior behavior, bool invert) {
  // Alternating gaps and matches covering the whole text.
  std::vector<std::pair<Range, bool>> spans;
  size_t done = 0;
  for (const Range& m : found) {
    if (m.first > done) spans.push_back({{done, m.first}, invert});
    spans.push_back({m, !invert});
    done = m.second;
  }
  if (done < size) spans.push_back({{done, size}, invert});

  std::vector<Range> pieces;
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::kRemoved:
      for (const auto& [r, is_match] : spans) {
        if (!is_match) pieces.push_back(r);
      }
      break;
    case SplitBehavior::kIsolated:
      for (const auto& [r, is_match] : spans) pieces.push_back(r);
      break;
    case SplitBehavior::kMergedWithPrevious:
      for (const auto& [r, is_match] : spans) {
        if (is_match && !previous_match && !pieces.empty()) {
          pieces.back().second = r.second;
        } else {
          pieces.push_back(r);
        }
        previous_match = is_match;
      }
      break;
    case SplitBehavior::kMergedWithNext:
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        const auto& [r, is_match] = *it;
        if (is_match && !previous_match && !pieces.empty()) {
          pieces.back().first = r.first;
        } else {
          pieces.push_back(r);
        }
        previous_match = is_match;
      }
      std::reverse(pieces.begin(), pieces.end());
      break;
    case SplitBehavior::kContiguous:
      for (const auto& [r, is_match] : spans) {
        if (is_match == previous_match && !pieces.empty()) {
          pieces.back().second = r.second;
        } else {
          pieces.push_back(r);
        }
        previous_match = is_match;
      }
      break;
  }
  return pieces;
}

// Cuts `piece` at `ranges`, appending the non-empty parts to `out`.
void AppendPieces(const PreToken& piece, const std::vector<Range>& ranges, std::vector<PreToken>* out) {
  for (const auto& [begin, end] : ranges) {
    if (end <= begin) continue;
    out->push_back({piece.text.substr(begin, end - begin), piece.at_text_start && begin == 0});
  }
}

class SequencePreTokenizer : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> steps) : steps_(std::move(steps)) {}
  void Split(std::vector<PreToken>* pieces) const override {
    for (const auto& step : steps_) step->Split(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

class SplitPreTokenizer : public PreTokenizer {
 public:
  SplitPreTokenizer(Pattern pattern, SplitBehavior behavior, bool invert)
      : pattern_(std::move(pattern)), behavior_(behavior), invert_(invert) {}
  void Split(std::vector<PreToken>* pieces) const override {
    std::vector<PreToken> out;
    for (const PreToken& piece : *pieces) {
      AppendPieces(piece, SplitRanges(pattern_.FindAll(piece.text), piece.text.size(), behavior_, invert_), &out);
    }
    *pieces = std::move(out);
  }

 private:
  Pattern pattern_;
  SplitBehavior behavior_;
  bool invert_;
};

class ByteLevelPreTokenizer : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, std::unique_ptr<Regex> regex)
      : add_prefix_space_(add_prefix_space), regex_(std::move(regex)) {}
  void Split(std::vector<PreToken>* pieces) const override {
    std::vector<PreToken> split;
    for (PreToken& piece : *pieces) {
      if (add_prefix_space_ && (piece.text.empty() || piece.text[0] != ' ')) piece.text = " " + piece.text;
      if (regex_ == nullptr) {
        if (!piece.text.empty()) split.push_back(std::move(piece));
      } else {
        AppendPieces(piece,
                     SplitRanges(regex_->FindAll(piece.text), piece.text.size(), SplitBehavior::kIsolated, false),
                     &split);
      }
    }
    for (PreToken& piece : split) {
      std::string mapped;
      mapped.reserve(piece.text.size() * 2);
      BytesToByteLevel(piece.text, &mapped);
      piece.text = std::move(mapped);
    }
    *pieces = std::move(split);
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> regex_;  // null when use_regex is false
};

enum class PrependScheme { kAlways, kFirst, kNever };

class MetaspacePreTokenizer : public PreTokenizer {
 public:
  MetaspacePreTokenizer(std::string replacement, PrependScheme scheme, bool split)
      : replacement_(std::move(replacement)), scheme_(scheme), split_(split) {}
  void Split(std::vector<PreToken>* pieces) const override {
    std::vector<PreToken> out;
    for (const PreToken& piece : *pieces) {
      std::string text;
      text.reserve(piece.text.size() + replacement_.size());
      for (char c : piece.text) {
        if (c == ' ') {
          text.append(replacement_);
        } else {
          text.push_back(c);
        }
      }
      const bool prepend =
          scheme_ == PrependScheme::kAlways || (scheme_ == PrependScheme::kFirst && piece.at_text_start);
      if (prepend && !text.starts_with(replacement_)) text = replacement_ + text;
      PreToken replaced{std::move(text), piece.at_text_start};
      if (!split_) {
        if (!replaced.text.empty()) out.push_back(std::move(replaced));
        continue;
      }
      std::vector<Range> found;
      for (size_t pos = replaced.text.find(replacement_); pos != std::string::npos;
           pos = replaced.text.find(replacement_, pos + replacement_.size())) {
        found.emplace_back(pos, pos + replacement_.size());
      }
      AppendPieces(replaced, SplitRanges(found, replaced.text.size(), SplitBehavior::kMergedWithNext, false), &out);
    }
    *pieces = std::move(out);
  }

 private:
  std::string replacement_;
  PrependScheme scheme_;
  bool split_;
};

StatusOr<SplitBehavior> ParseBehavior(const std::string& name, const JsonPath& at) {
  if (name == "Removed") return SplitBehavior::kRemoved;
  if (name == "Isolated") return SplitBehavior::kIsolated;
  if (name == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (name == "Contiguous") return SplitBehavior::kContiguous;
  return Status::DataLoss(at.ToString() + " '" + name +
                          "' is not a split behavior (Removed, Isolated, MergedWithPrevious, MergedWithNext, "
                          "Contiguous)");
}

StatusOr<std::unique_ptr<PreTokenizer>> MetaspaceFromJson(const nlohmann::json& j, const JsonPath& at) {
  BATON_ASSIGN_OR_RETURN(std::string replacement, GetString(j, "replacement", at));
  BATON_ASSIGN_OR_RETURN(bool split, GetBool(j, "split", true, at));
  PrependScheme scheme = PrependScheme::kAlways;
  if (HasField(j, "prepend_scheme")) {
    BATON_ASSIGN_OR_RETURN(std::string name, GetString(j, "prepend_scheme", at));
    if (name == "first") {
      scheme = PrependScheme::kFirst;
    } else if (name == "never") {
      scheme = PrependScheme::kNever;
    } else if (name != "always") {
      return Status::DataLoss(at.Field("prepend_scheme").ToString() + " '" + name +
                              "' is not one of always, first, never");
    }
  } else {
    // Files older than prepend_scheme say add_prefix_space instead.
    BATON_ASSIGN_OR_RETURN(bool add_prefix_space, GetBool(j, "add_prefix_space", true, at));
    scheme = add_prefix_space ? PrependScheme::kAlways : PrependScheme::kNever;
  }
  return std::unique_ptr<PreTokenizer>(new MetaspacePreTokenizer(std::move(replacement), scheme, split));
}

}  // namespace

StatusOr<std::unique_ptr<PreTokenizer>> PreTokenizerFromJson(const nlohmann::json& j, const JsonPath& at) {
  if (j.is_null()) return std::unique_ptr<PreTokenizer>();
  BATON_ASSIGN_OR_RETURN(std::string type, GetString(j, "type", at));
  if (type == "Sequence") {
    BATON_ASSIGN_OR_RETURN(const nlohmann::json* items, GetArray(j, "pretokenizers", at));
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    for (size_t i = 0; i < items->size(); ++i) {
      BATON_ASSIGN_OR_RETURN(auto step, PreTokenizerFromJson((*items)[i], at.Field("pretokenizers").Index(i)));
      if (step != nullptr) steps.push_back(std::move(step));
    }
    return std::unique_ptr<PreTokenizer>(new SequencePreTokenizer(std::move(steps)));
  }
  if (type == "ByteLevel") {
    BATON_ASSIGN_OR_RETURN(bool add_prefix_space, GetBool(j, "add_prefix_space", true, at));
    BATON_ASSIGN_OR_RETURN(bool use_regex, GetBool(j, "use_regex", true, at));
    std::unique_ptr<Regex> regex;
    if (use_regex) {
      BATON_ASSIGN_OR_RETURN(regex, Regex::Compile(kGpt2Pattern, at.ToString()));
    }
    return std::unique_ptr<PreTokenizer>(new ByteLevelPreTokenizer(add_prefix_space, std::move(regex)));
  }
  if (type == "Split") {
    if (!HasField(j, "pattern")) return Status::DataLoss(at.Field("pattern").ToString() + " is missing");
    BATON_ASSIGN_OR_RETURN(Pattern pattern, Pattern::FromJson(j["pattern"], at.Field("pattern")));
    BATON_ASSIGN_OR_RETURN(std::string behavior_name, GetString(j, "behavior", at));
    BATON_ASSIGN_OR_RETURN(SplitBehavior behavior, ParseBehavior(behavior_name, at.Field("behavior")));
    BATON_ASSIGN_OR_RETURN(bool invert, GetBool(j, "invert", false, at));
    return std::unique_ptr<PreTokenizer>(new SplitPreTokenizer(std::move(pattern), behavior, invert));
  }
  if (type == "Metaspace") return MetaspaceFromJson(j, at);
  if (type == "Digits") {
    // Digits = Split on \p{N}: one piece per digit, or one per run of digits.
    BATON_ASSIGN_OR_RETURN(bool individual, GetBool(j, "individual_digits", false, at));
    BATON_ASSIGN_OR_RETURN(Pattern pattern, Pattern::FromJson({{"Regex", R"(\p{N})"}}, at));
    return std::unique_ptr<PreTokenizer>(new SplitPreTokenizer(
        std::move(pattern), individual ? SplitBehavior::kIsolated : SplitBehavior::kContiguous, false));
  }
  return UnsupportedType(at, type, "ByteLevel, Split, Metaspace, Digits, Sequence");
}

}  // namespace baton
