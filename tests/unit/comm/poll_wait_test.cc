#include "runtime/comm/poll_wait.h"

#include <gtest/gtest.h>

#include <chrono>

namespace baton {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

CommOptions WithTimeout(milliseconds timeout) {
  CommOptions options;
  options.timeout = timeout;
  return options;
}

std::string DescribeRecv() { return "recv from rank 2 (tag 7)"; }

TEST(PollUntilDone, ReturnsOnceDone) {
  int polls = 0;
  Status status =
      PollUntilDone([&]() -> StatusOr<bool> { return ++polls == 5; }, WithTimeout(milliseconds(1000)), DescribeRecv);
  EXPECT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(polls, 5);
}

TEST(PollUntilDone, TimesOutAsUnavailableWithTheOperation) {
  const Clock::time_point start = Clock::now();
  Status status = PollUntilDone([]() -> StatusOr<bool> { return false; }, WithTimeout(milliseconds(200)), DescribeRecv);
  const auto waited = Clock::now() - start;
  EXPECT_EQ(status.code(), StatusCode::kUnavailable);
  EXPECT_EQ(status.message(), "recv from rank 2 (tag 7) timed out after 0.2 s: peer dead or stuck?");
  EXPECT_GE(waited, milliseconds(200));
  EXPECT_LT(waited, milliseconds(2000));
}

TEST(PollUntilDone, ZeroTimeoutWaitsAsLongAsItTakes) {
  const Clock::time_point start = Clock::now();
  Status status = PollUntilDone([&]() -> StatusOr<bool> { return Clock::now() - start > milliseconds(150); },
                                WithTimeout(milliseconds(0)), DescribeRecv);
  EXPECT_TRUE(status.ok()) << status.ToString();
}

TEST(PollUntilDone, PollErrorsEndTheWait) {
  Status status = PollUntilDone([]() -> StatusOr<bool> { return Status::Internal("MPI_Testall failed"); },
                                WithTimeout(milliseconds(1000)), DescribeRecv);
  EXPECT_EQ(status.code(), StatusCode::kInternal);
  EXPECT_EQ(status.message(), "MPI_Testall failed");
}

TEST(PollUntilDone, LivenessCheckEndsTheWaitEarly) {
  CommOptions options = WithTimeout(milliseconds(5000));
  options.liveness_interval = milliseconds(10);
  int checks = 0;
  options.liveness = [&] { return ++checks < 3 ? Status::Ok() : Status::Unavailable("coordinator shut down"); };
  const Clock::time_point start = Clock::now();
  Status status = PollUntilDone([]() -> StatusOr<bool> { return false; }, options, DescribeRecv);
  EXPECT_EQ(status.code(), StatusCode::kUnavailable);
  EXPECT_EQ(status.message(), "recv from rank 2 (tag 7): coordinator shut down");
  EXPECT_EQ(checks, 3);
  EXPECT_LT(Clock::now() - start, milliseconds(2000));
}

}  // namespace
}  // namespace baton
