#include "runtime/sampling/stop_matcher.h"

#include <algorithm>
#include <utility>

namespace baton {
namespace {

// fallback[i]: length of the longest proper prefix of text[0, i] that is
// also a suffix of it.
std::vector<size_t> PrefixFunction(const std::string& text) {
  std::vector<size_t> fallback(text.size(), 0);
  for (size_t i = 1; i < text.size(); ++i) {
    size_t len = fallback[i - 1];
    while (len > 0 && text[i] != text[len]) len = fallback[len - 1];
    if (text[i] == text[len]) ++len;
    fallback[i] = len;
  }
  return fallback;
}

}  // namespace

Status ValidateStopStrings(const std::vector<std::string>& stop_strings, size_t max_count, size_t max_len) {
  if (stop_strings.size() > max_count) {
    return Status::InvalidArgument(std::to_string(stop_strings.size()) + " stop strings (max " +
                                   std::to_string(max_count) + ")");
  }
  for (size_t i = 0; i < stop_strings.size(); ++i) {
    const std::string name = "stop[" + std::to_string(i) + "]";
    if (stop_strings[i].empty()) return Status::InvalidArgument(name + " is empty");
    if (stop_strings[i].size() > max_len) {
      return Status::InvalidArgument(name + " is " + std::to_string(stop_strings[i].size()) + " bytes (max " +
                                     std::to_string(max_len) + ")");
    }
  }
  return Status::Ok();
}

StopMatcher::StopMatcher(std::vector<std::string> stop_strings) {
  for (size_t i = 0; i < stop_strings.size(); ++i) {
    if (stop_strings[i].empty()) continue;  // would match before any text
    Pattern p;
    p.fallback = PrefixFunction(stop_strings[i]);
    p.text = std::move(stop_strings[i]);
    p.index = i;
    patterns_.push_back(std::move(p));
  }
}

std::string StopMatcher::Push(std::string_view text) {
  if (stopped_) return {};
  const size_t first_new = held_.size();
  held_.append(text);

  for (size_t pos = first_new; pos < held_.size(); ++pos) {
    const char c = held_[pos];
    size_t match_start = held_.size();  // none yet
    for (Pattern& p : patterns_) {
      size_t len = p.matched;
      while (len > 0 && c != p.text[len]) len = p.fallback[len - 1];
      if (c == p.text[len]) ++len;
      p.matched = len;
      if (len == p.text.size()) {
        // The partial match was held back, so it starts inside held_.
        const size_t start = pos + 1 - len;
        if (start < match_start) {
          match_start = start;
          matched_index_ = p.index;
        }
      }
    }
    if (match_start < held_.size()) {
      stopped_ = true;
      std::string out = held_.substr(0, match_start);
      held_.clear();
      return out;
    }
  }

  // Hold back the longest tail that a stop string could still complete.
  size_t hold = 0;
  for (const Pattern& p : patterns_) hold = std::max(hold, p.matched);
  std::string out = held_.substr(0, held_.size() - hold);
  held_.erase(0, held_.size() - hold);
  return out;
}

std::string StopMatcher::Flush() {
  for (Pattern& p : patterns_) p.matched = 0;
  if (stopped_) return {};
  return std::exchange(held_, std::string());
}

}  // namespace baton
