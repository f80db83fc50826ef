#include "runtime/comm/comm_options.h"

#include <gtest/gtest.h>

#include <cstdlib>

namespace baton {
namespace {

using std::chrono::milliseconds;

TEST(CommOptions, ParsesSecondsWithFractions) {
  EXPECT_EQ(*ParseCommTimeout("30"), milliseconds(30000));
  EXPECT_EQ(*ParseCommTimeout("0.5"), milliseconds(500));
  EXPECT_EQ(*ParseCommTimeout("0"), milliseconds(0));
  EXPECT_EQ(*ParseCommTimeout("0.0001"), milliseconds(1));  // tiny, not "forever"
}

TEST(CommOptions, RejectsNonsenseNamingTheVariable) {
  for (const char* bad : {"", "abc", "-1", "3s", " 3", "nan", "inf", "1e12"}) {
    StatusOr<milliseconds> parsed = ParseCommTimeout(bad);
    ASSERT_FALSE(parsed.ok()) << "'" << bad << "'";
    EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(parsed.status().message().find("BATON_COMM_TIMEOUT_S='" + std::string(bad) + "'"), std::string::npos)
        << parsed.status().message();
  }
}

TEST(CommOptions, ReadsTheEnvironment) {
  ASSERT_EQ(unsetenv(kCommTimeoutEnv), 0);
  EXPECT_EQ(*CommTimeoutFromEnv(), milliseconds(30000));
  ASSERT_EQ(setenv(kCommTimeoutEnv, "", 1), 0);
  EXPECT_EQ(*CommTimeoutFromEnv(), milliseconds(30000));
  ASSERT_EQ(setenv(kCommTimeoutEnv, "2.5", 1), 0);
  StatusOr<CommOptions> options = CommOptionsFromEnv("pipeline");
  ASSERT_TRUE(options.ok()) << options.status().ToString();
  EXPECT_EQ(options->timeout, milliseconds(2500));
  EXPECT_EQ(options->name, "pipeline");
  ASSERT_EQ(setenv(kCommTimeoutEnv, "soon", 1), 0);
  EXPECT_EQ(CommOptionsFromEnv("world").status().code(), StatusCode::kInvalidArgument);
  ASSERT_EQ(unsetenv(kCommTimeoutEnv), 0);
}

TEST(CommOptions, DescribesTimeouts) {
  EXPECT_EQ(DescribeTimeout(milliseconds(30000)), "30 s");
  EXPECT_EQ(DescribeTimeout(milliseconds(250)), "0.25 s");
  EXPECT_EQ(DescribeTimeout(milliseconds(0)), "no timeout");
}

}  // namespace
}  // namespace baton
