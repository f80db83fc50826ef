#include "runtime/sampling/stop_matcher.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace baton {
namespace {

// Independent reference: the text up to the stop string that completes
// first (the longest one if several complete on the same byte), or all of it.
struct Expected {
  std::string text;
  bool stopped = false;
};
Expected Reference(const std::string& text, const std::vector<std::string>& stops) {
  for (size_t end = 1; end <= text.size(); ++end) {
    size_t longest = 0;
    for (const std::string& s : stops) {
      if (!s.empty() && s.size() <= end && text.compare(end - s.size(), s.size(), s) == 0) {
        longest = std::max(longest, s.size());
      }
    }
    if (longest > 0) return {text.substr(0, end - longest), true};
  }
  return {text, false};
}

// Feeds `pieces` one push at a time; returns everything emitted, Flush included.
std::string Stream(StopMatcher& m, const std::vector<std::string>& pieces) {
  std::string out;
  for (const std::string& p : pieces) out += m.Push(p);
  return out + m.Flush();
}

TEST(StopMatcher, StopStringSplitAcrossPushes) {
  StopMatcher m({"lo w"});
  EXPECT_EQ(m.Push("Hel"), "He") << "'l' could start the stop string";
  EXPECT_FALSE(m.stopped());
  EXPECT_EQ(m.Push("lo wor"), "l");
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(m.matched_index(), 0u);
  EXPECT_EQ(m.Push("ld"), "");
  EXPECT_EQ(m.Flush(), "");
}

TEST(StopMatcher, MultipleStopStrings) {
  StopMatcher m({"STOP", "\n\n"});
  EXPECT_EQ(m.Push("line one\n"), "line one");
  EXPECT_EQ(m.Push("\nline two STOP"), "");
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(m.matched_index(), 1u);

  // The first to complete wins, even if another started earlier.
  StopMatcher first({"abcd", "bc"});
  EXPECT_EQ(first.Push("xabcd"), "xa");
  EXPECT_EQ(first.matched_index(), 1u);
  // Completing on the same byte: the one starting earlier is cut whole.
  StopMatcher same_end({"bc", "abc"});
  EXPECT_EQ(same_end.Push("xabc"), "x");
  EXPECT_EQ(same_end.matched_index(), 1u);
}

TEST(StopMatcher, HeldTextIsReleasedWhenItStopsMatchingOrAtFlush) {
  StopMatcher m({"</s>"});
  EXPECT_EQ(m.Push("a<"), "a");
  EXPECT_EQ(m.Push("b"), "<b");
  EXPECT_EQ(m.Push("c</"), "c");
  EXPECT_EQ(m.Flush(), "</") << "no stop found: what was held comes out";
  EXPECT_FALSE(m.stopped());
}

TEST(StopMatcher, OverlappingPartialMatchesNeedNoRescan) {
  // "aab" inside "aaab": the partial match restarts one byte later.
  StopMatcher m({"aab"});
  EXPECT_EQ(m.Push("a"), "");
  EXPECT_EQ(m.Push("a"), "");
  EXPECT_EQ(m.Push("a"), "a");
  EXPECT_EQ(m.Push("b!"), "");
  EXPECT_TRUE(m.stopped());
}

TEST(StopMatcher, NoStopStringsEmitsEverythingAtOnce) {
  StopMatcher m({});
  EXPECT_EQ(m.Push("anything"), "anything");
  EXPECT_EQ(m.Flush(), "");
  StopMatcher empty_ignored({""});
  EXPECT_EQ(empty_ignored.Push("x"), "x");
  EXPECT_FALSE(empty_ignored.stopped());
}

TEST(StopMatcher, Utf8) {
  // 停 = E5 81 9C; 場 = E5 A0 B4 shares its first byte.
  StopMatcher m({"停止"});
  EXPECT_EQ(m.Push("你好\xE5"), "你好") << "a partial character that may start the stop";
  EXPECT_EQ(m.Push("\xA0\xB4"), "場");
  EXPECT_EQ(m.Push("吧停"), "吧");
  EXPECT_EQ(m.Push("止了"), "");
  EXPECT_TRUE(m.stopped());

  StopMatcher not_stopped({"。"});
  EXPECT_EQ(Stream(not_stopped, {"日本", "語"}), "日本語");
}

TEST(StopMatcher, OutputDoesNotDependOnHowTextIsSplit) {
  std::mt19937 gen(17);
  const std::vector<std::string> stops = {"aab", "bcab", "cc", "abca"};
  for (int trial = 0; trial < 500; ++trial) {
    std::string text(gen() % 30, 'a');
    for (char& c : text) c = static_cast<char>('a' + gen() % 3);
    const Expected expected = Reference(text, stops);

    std::vector<std::string> pieces;
    for (size_t pos = 0; pos < text.size();) {
      size_t len = std::min<size_t>(text.size() - pos, gen() % 5);  // empty pushes too
      pieces.push_back(text.substr(pos, len));
      pos += len;
    }
    StopMatcher m(stops);
    ASSERT_EQ(Stream(m, pieces), expected.text) << "text " << text;
    EXPECT_EQ(m.stopped(), expected.stopped) << "text " << text;
  }
}

TEST(StopMatcher, ValidateStopStrings) {
  EXPECT_TRUE(ValidateStopStrings({}).ok());
  EXPECT_TRUE(ValidateStopStrings({"\n", "</s>"}).ok());

  Status s = ValidateStopStrings({"a", "b", ""});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "stop[2] is empty");

  s = ValidateStopStrings({std::string(300, 'x')});
  EXPECT_EQ(s.message(), "stop[0] is 300 bytes (max 256)");
  EXPECT_TRUE(ValidateStopStrings({std::string(300, 'x')}, 16, 300).ok());

  s = ValidateStopStrings(std::vector<std::string>(17, "x"));
  EXPECT_EQ(s.message(), "17 stop strings (max 16)");
  EXPECT_FALSE(ValidateStopStrings({"a", "b"}, 1).ok());
}

}  // namespace
}  // namespace baton
