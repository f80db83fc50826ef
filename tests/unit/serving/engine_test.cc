// Engine's thread-safe front over FakeRunner: submissions from many
// threads, queue limits, cancel, stop/drain and a failing runner. (The
// same with the real model: tests/unit/stages/engine_test.cc.)
#include "runtime/serving/engine.h"

#include <gtest/gtest.h>

#include <thread>

#include "tests/unit/serving/event_collector.h"
#include "tests/unit/serving/fake_runner.h"

namespace baton {
namespace {

using testing::EventCollector;
using testing::FakeReference;
using testing::FakeRunner;

GenerationRequest Request(int i, int max_new = 12) {
  GenerationRequest r;
  r.prompt_ids = {1 + i % 90, 2, 3 + i % 7, 4};
  r.max_new_tokens = max_new;
  r.sampling.temperature = i % 2 ? 0.0f : 0.9f;
  r.sampling.seed = static_cast<uint64_t>(i);
  return r;
}

TEST(Engine, RequestsFromManyThreadsEachGetTheirOwnStream) {
  FakeRunner runner(40, 4, 2);
  KvBlockManager blocks(40, 4);
  Engine engine(runner, nullptr, blocks, {.max_batch_tokens = 16});
  EXPECT_EQ(engine.options().micro_batches, 2);  // resolved from the runner
  EventCollector events;
  Status loop;
  std::thread runner_thread([&] { loop = engine.Run(); });
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&, t] {
      for (int i = t * 8; i < t * 8 + 8; ++i) EXPECT_TRUE(engine.Submit(Request(i), events.Sink(i)).ok());
    });
  }
  for (auto& c : clients) c.join();
  ASSERT_TRUE(events.WaitFinals(32));
  for (int i = 0; i < 32; ++i) {
    const auto s = events.Get(i);
    const auto ref = FakeReference(Request(i), runner.config());
    EXPECT_EQ(s.tokens, ref.output_ids) << i;
    EXPECT_EQ(s.final.result.output_ids, ref.output_ids) << i;
    EXPECT_GE(s.final.timings.total_seconds, s.final.timings.first_token_seconds) << i;
    EXPECT_GE(s.final.timings.first_token_seconds, s.final.timings.queue_seconds) << i;
  }
  EXPECT_GT(engine.Stats().steps, 0);
  engine.Stop();
  runner_thread.join();
  EXPECT_TRUE(loop.ok()) << loop.ToString();
  EXPECT_TRUE(engine.Idle());
  EXPECT_EQ(engine.Stats().kv_usage, 0.0);
}

TEST(Engine, AFullQueueIsResourceExhaustedAndBadFieldsAreNamed) {
  FakeRunner runner(64, 4);
  KvBlockManager blocks(64, 4);
  Engine engine(runner, nullptr, blocks, {.max_waiting = 2});
  EventCollector events;
  ASSERT_TRUE(engine.Submit(Request(0), events.Sink(0)).ok());
  ASSERT_TRUE(engine.Submit(Request(1), events.Sink(1)).ok());
  EXPECT_EQ(engine.Stats().waiting, 2);
  auto full = engine.Submit(Request(2), events.Sink(2));
  EXPECT_EQ(full.status().code(), StatusCode::kResourceExhausted) << full.status().ToString();
  GenerationRequest bad = Request(3);
  bad.logprobs = 50;
  auto rejected = engine.Submit(bad, events.Sink(3));
  EXPECT_EQ(rejected.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(rejected.status().message().find("logprobs"), std::string::npos);
  EXPECT_FALSE(engine.Idle());

  Status loop;
  std::thread t([&] { loop = engine.Run(); });
  ASSERT_TRUE(events.WaitFinals(2));
  EXPECT_EQ(events.Get(0).final.result.output_ids, FakeReference(Request(0), runner.config()).output_ids);
  engine.Stop();
  t.join();
  EXPECT_TRUE(loop.ok());
}

TEST(Engine, StopAdmissionDrainsAndStopEndsTheRestWithUnavailable) {
  FakeRunner runner(600, 4, 2, 97, 2048);
  runner.SetStepDelay(1);
  KvBlockManager blocks(600, 4);
  Engine engine(runner, nullptr, blocks, {});
  EventCollector events;
  ASSERT_TRUE(engine.Submit(Request(0, 5), events.Sink(0)).ok());
  ASSERT_TRUE(engine.Submit(Request(1, 1500), events.Sink(1)).ok());  // runs until stopped
  Status loop;
  std::thread t([&] { loop = engine.Run(); });
  ASSERT_TRUE(events.WaitTokens(1, 3));
  engine.StopAdmission();
  EXPECT_EQ(engine.Submit(Request(2), events.Sink(2)).status().code(), StatusCode::kUnavailable);
  ASSERT_TRUE(events.WaitFinals(1));
  EXPECT_EQ(events.Get(0).final.result.finish_reason, FinishReason::kLength);  // drained normally
  engine.Stop();
  t.join();
  EXPECT_TRUE(loop.ok()) << loop.ToString();
  const auto cut = events.Get(1);
  EXPECT_EQ(cut.finals, 1);
  EXPECT_EQ(cut.final.result.finish_reason, FinishReason::kError);
  EXPECT_EQ(cut.final.error.code(), StatusCode::kUnavailable);
  EXPECT_EQ(runner.in_flight(), 0);  // nothing left in the runner
  EXPECT_EQ(blocks.num_used_blocks(), 0);
}

TEST(Engine, CancelEndsTheRequestAndFreesItsBlocks) {
  FakeRunner runner(600, 4, 1, 97, 2048);
  runner.SetStepDelay(1);
  KvBlockManager blocks(600, 4);
  Engine engine(runner, nullptr, blocks, {});
  EventCollector events;
  auto id = engine.Submit(Request(0, 1500), events.Sink(0));
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(engine.Submit(Request(1, 6), events.Sink(1)).ok());
  Status loop;
  std::thread t([&] { loop = engine.Run(); });
  ASSERT_TRUE(events.WaitTokens(0, 10));
  EXPECT_GT(engine.Stats().kv_usage, 0.0);
  engine.Cancel(*id);
  engine.Cancel(12345);  // unknown: ignored
  ASSERT_TRUE(events.WaitFinals(2));
  EXPECT_EQ(events.Get(0).final.result.finish_reason, FinishReason::kCancelled);
  EXPECT_EQ(events.Get(1).final.result.output_ids, FakeReference(Request(1, 6), runner.config()).output_ids);
  for (int i = 0; i < 200 && !engine.Idle(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_TRUE(engine.Idle());
  EXPECT_EQ(engine.Stats().kv_usage, 0.0);
  EXPECT_EQ(engine.Stats().running, 0);
  engine.Stop();
  t.join();
  EXPECT_TRUE(loop.ok());
}

TEST(Engine, ARunnerFailureEndsEveryRequestAndRunReturnsIt) {
  FakeRunner runner(64, 4, 2);
  KvBlockManager blocks(64, 4);
  Engine engine(runner, nullptr, blocks, {});
  EventCollector events;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(engine.Submit(Request(i, 50), events.Sink(i)).ok());
  runner.FailAtSubmit(5);
  Status loop = engine.Run();  // returns by itself
  EXPECT_EQ(loop.code(), StatusCode::kInternal);
  for (int i = 0; i < 3; ++i) {
    const auto s = events.Get(i);
    EXPECT_EQ(s.finals, 1) << i;
    EXPECT_EQ(s.final.result.finish_reason, FinishReason::kError) << i;
    EXPECT_NE(s.final.error.message().find("injected failure"), std::string::npos) << i;
  }
  EXPECT_EQ(engine.Submit(Request(4), events.Sink(4)).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(blocks.num_used_blocks(), 0);
}

TEST(Engine, WarmupRunsDummyRequestsAndLeavesNoTrace) {
  FakeRunner runner(64, 4);
  KvBlockManager blocks(64, 4);
  Engine engine(runner, nullptr, blocks, {});
  ASSERT_TRUE(engine.Warmup(3, 9, 2).ok());
  EXPECT_GE(runner.plans().size(), 2u);
  const EngineStats s = engine.Stats();
  EXPECT_EQ(s.steps, 0);
  EXPECT_EQ(s.prefix_queries, 0);
  EXPECT_EQ(blocks.num_cached_blocks(), 0);
  EXPECT_EQ(blocks.num_used_blocks(), 0);
  EXPECT_TRUE(engine.Idle());
}

}  // namespace
}  // namespace baton
