// The pipeline training schedules: every micro-batch's forward comes before
// its backward, each exactly once, and 1F1B bounds the live activations.
#include <gtest/gtest.h>

#include "runtime/training/pipeline_schedule.h"

namespace baton {
namespace {

void ExpectComplete(const std::vector<PipeOp>& ops, int m) {
  std::vector<int> forward_at(m, -1), backward_at(m, -1);
  for (size_t i = 0; i < ops.size(); ++i) {
    auto& at = ops[i].forward ? forward_at : backward_at;
    ASSERT_EQ(at[ops[i].micro_batch], -1) << "micro-batch run twice";
    at[ops[i].micro_batch] = static_cast<int>(i);
  }
  for (int k = 0; k < m; ++k) {
    EXPECT_GE(forward_at[k], 0);
    EXPECT_GT(backward_at[k], forward_at[k]) << "micro-batch " << k;
  }
}

TEST(PipelineSchedule, GPipeRunsAllForwardsFirst) {
  const auto ops = StageSchedule(ScheduleKind::kGPipe, 1, 4, 6);
  ExpectComplete(ops, 6);
  for (int i = 0; i < 6; ++i) EXPECT_TRUE(ops[i].forward);
  EXPECT_EQ(PeakLiveMicroBatches(ops), 6);
}

TEST(PipelineSchedule, OneFOneBBoundsLiveMicroBatches) {
  for (int p : {1, 2, 3, 4}) {
    for (int m : {1, 2, 5, 8}) {
      for (int s = 0; s < p; ++s) {
        const auto ops = StageSchedule(ScheduleKind::kOneFOneB, s, p, m);
        ExpectComplete(ops, m);
        EXPECT_LE(PeakLiveMicroBatches(ops), std::min(p - s, m)) << "P " << p << " M " << m << " stage " << s;
      }
    }
  }
  // The last stage alternates from the start: F0 B0 F1 B1 ...
  const auto last = StageSchedule(ScheduleKind::kOneFOneB, 3, 4, 3);
  const std::vector<PipeOp> want = {{true, 0}, {false, 0}, {true, 1}, {false, 1}, {true, 2}, {false, 2}};
  EXPECT_EQ(last, want);
}

TEST(PipelineSchedule, ParsesNames) {
  EXPECT_EQ(*ParseScheduleKind("gpipe"), ScheduleKind::kGPipe);
  EXPECT_EQ(*ParseScheduleKind("1f1b"), ScheduleKind::kOneFOneB);
  EXPECT_FALSE(ParseScheduleKind("zb-h1").ok());
}

}  // namespace
}  // namespace baton
