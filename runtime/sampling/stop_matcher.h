// StopMatcher: finds stop strings in streamed text without ever showing part
// of one.
//
// Text that could be the start of a stop string is held back until the next
// Push() decides it; on a match the stream ends right before the stop string,
// which is not emitted (like vLLM and TGI). The first stop string to complete
// wins (the one starting earliest if two complete on the same byte), so the
// result does not depend on how the text was split into pushes. Matching is
// byte-wise, which is exact for UTF-8: a held-back suffix always starts where
// a stop string's first character does.
//
// One per sequence; not thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/core/status.h"

namespace baton {

// InvalidArgument naming the problem: "stop[2] is empty", "stop[0] is 300
// bytes (max 256)", "17 stop strings (max 16)".
Status ValidateStopStrings(const std::vector<std::string>& stop_strings, size_t max_count = 16, size_t max_len = 256);

class StopMatcher {
 public:
  // Stop strings should have passed ValidateStopStrings(); empty ones are
  // ignored here.
  explicit StopMatcher(std::vector<std::string> stop_strings);

  // Feeds newly decoded text; returns the text that is safe to emit now.
  // Once a stop string is found, stopped() is true, the returned text ends
  // right before it, and later pushes return nothing.
  std::string Push(std::string_view text);

  // At the end of generation: returns what was held back (empty if stopped).
  std::string Flush();

  bool stopped() const { return stopped_; }
  // Index (in the constructor's list) of the stop string found; valid only
  // when stopped().
  size_t matched_index() const { return matched_index_; }

 private:
  // A stop string with its KMP automaton, which follows the whole stream so
  // that each pushed byte costs O(1) amortized per stop string.
  struct Pattern {
    std::string text;
    std::vector<size_t> fallback;  // KMP prefix function of text
    size_t index = 0;              // position in the constructor's list
    size_t matched = 0;            // longest suffix of the stream that is a prefix of text
  };

  std::vector<Pattern> patterns_;
  std::string held_;  // pushed but not yet emitted
  bool stopped_ = false;
  size_t matched_index_ = 0;
};

}  // namespace baton
