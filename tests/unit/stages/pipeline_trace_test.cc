// SummarizeTrace on hand-made events: busy fractions, the bubble, and the
// window that opens with the first computation.
#include <gtest/gtest.h>

#include "stages/pipeline_trace.h"

namespace baton {
namespace {

nlohmann::json Event(int stage, const char* cat, double ts, double dur) {
  return {{"pid", stage}, {"cat", cat}, {"name", cat}, {"ph", "X"}, {"ts", ts}, {"dur", dur}};
}

TEST(SummarizeTrace, BusyIsComputeOverTheWindowFromTheFirstComputation) {
  nlohmann::json events = nlohmann::json::array();
  // Stage 1 loaded sooner and waits 500 us in its first receive before
  // stage 0 computes anything: start-up skew, outside the window.
  events.push_back(Event(1, "recv", 0, 600));
  events.push_back(Event(0, "compute", 500, 100));  // window: [500, 900)
  events.push_back(Event(0, "send", 600, 1));
  events.push_back(Event(0, "compute", 601, 100));
  events.push_back(Event(1, "compute", 600, 100));
  events.push_back(Event(1, "compute", 701, 100));
  events.push_back(Event(0, "wait", 701, 199));
  events.push_back(Event(1, "send", 801, 99));
  const PipelineUtilization u = SummarizeTrace(events, 2, 2);
  ASSERT_EQ(u.stage_busy.size(), 2u);
  EXPECT_DOUBLE_EQ(u.stage_busy[0], 200.0 / 400.0);
  EXPECT_DOUBLE_EQ(u.stage_busy[1], 200.0 / 400.0);
  EXPECT_DOUBLE_EQ(u.bubble, 0.5);
  EXPECT_DOUBLE_EQ(u.gpipe_estimate, 1.0 / 3.0);
}

TEST(SummarizeTrace, NoComputationMeansNothingBusy) {
  nlohmann::json events = nlohmann::json::array();
  events.push_back(Event(0, "wait", 0, 10));
  const PipelineUtilization u = SummarizeTrace(events, 1, 1);
  ASSERT_EQ(u.stage_busy.size(), 1u);
  EXPECT_EQ(u.stage_busy[0], 0.0);
  EXPECT_EQ(u.bubble, 1.0);
}

}  // namespace
}  // namespace baton
