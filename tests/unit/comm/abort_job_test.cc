#include "runtime/comm/abort_job.h"

#include <gtest/gtest.h>

namespace baton {
namespace {

// Without MPI running, AbortJob ends the process with the status's exit code.
// "threadsafe" re-runs the test binary for the child, so the child never
// inherits an MPI that another test of this process started.
TEST(AbortJob, ExitsWithTheStatusCodeAndSaysWhy) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(AbortJob(Status::InvalidArgument("--stages 3 but 2 ranks")), ::testing::ExitedWithCode(2),
              "baton: fatal: INVALID_ARGUMENT: --stages 3 but 2 ranks");
  EXPECT_EXIT(AbortJob(Status::Unavailable("recv from rank 1 (tag 0) timed out")), ::testing::ExitedWithCode(1),
              "fatal: UNAVAILABLE: recv from rank 1");
}

}  // namespace
}  // namespace baton
