// The scheduler's run-ahead (SchedulerOptions::run_ahead) over the real
// model: a LocalRunner told to take continuing plans on the CPU, where it
// feeds each one the tokens of the step before from the host. Whatever the
// sampling, stop strings, preemption or cancellation, every request makes
// exactly what it makes without run-ahead, and the steps ran ahead.
#include <gtest/gtest.h>

#include <map>
#include <thread>

#include "runtime/serving/engine.h"
#include "runtime/serving/generator.h"
#include "runtime/serving/scheduler.h"
#include "stages/local_runner.h"
#include "stages/model_session.h"
#include "tests/test_data.h"
#include "tests/unit/serving/event_collector.h"
#include "tests/unit/stages/counting_runner.h"
#include "tests/unit/stages/mini_session.h"

namespace baton {
namespace {

using testing::FixturePrompts;
using testing::OpenMini;

// Greedy and seeded sampling, a repetition penalty,
// logprobs, stop strings that end requests while a step runs ahead, and
// lengths of 1 to 3 tokens, where little or nothing can run ahead.
std::vector<GenerationRequest> MixedRequests(const nlohmann::json& ref) {
  auto prompts = FixturePrompts(ref, 20);
  std::vector<GenerationRequest> requests;
  for (int i = 0; i < 12; ++i) {
    GenerationRequest r = prompts[static_cast<size_t>(i) % prompts.size()];
    SamplingParams& s = r.sampling;
    s.seed = static_cast<uint64_t>(500 + i);
    s.temperature = i % 3 == 0 ? 0.0f : 0.8f;
    if (i % 3 == 1) s.top_k = 20;
    if (i == 4) s.repetition_penalty = 1.3f;
    if (i == 5) r.logprobs = 3;
    if (i >= 8) r.stop = {"the"};
    if (i < 3) r.max_new_tokens = i + 1;
    requests.push_back(r);
  }
  return requests;
}

struct Outcome {
  std::vector<GenerationResult> results;
  std::map<size_t, std::vector<int32_t>> streamed;
};

Outcome Generate(ModelRunner& runner, ModelSession& session, const std::vector<GenerationRequest>& requests,
                 SchedulerOptions options = {}) {
  Generator generator(runner, session.tokenizer(), session.blocks(), options);
  Outcome run;
  auto results = generator.Generate(
      requests, [&](size_t i, int32_t token, const std::string&) { run.streamed[i].push_back(token); });
  EXPECT_TRUE(results.ok()) << results.status().ToString();
  if (results.ok()) run.results = std::move(results).value();
  return run;
}

void ExpectSame(const Outcome& got, const Outcome& want, size_t n) {
  ASSERT_EQ(got.results.size(), n);
  ASSERT_EQ(want.results.size(), n);
  for (size_t i = 0; i < n; ++i) {
    EXPECT_EQ(got.results[i].output_ids, want.results[i].output_ids) << "request " << i;
    EXPECT_EQ(got.results[i].text, want.results[i].text) << "request " << i;
    EXPECT_EQ(got.results[i].finish_reason, want.results[i].finish_reason) << "request " << i;
    const auto it = got.streamed.find(i);
    EXPECT_EQ(it == got.streamed.end() ? std::vector<int32_t>{} : it->second, got.results[i].output_ids)
        << "request " << i;
  }
}

TEST(RunAhead, MixedRequestsTogetherEqualThemWithoutRunAhead) {
  for (const char* model : {"gpt2-mini", "llama-mini"}) {
    auto session = OpenMini(model, size_t{64} << 20);
    ASSERT_NE(session, nullptr);
    const auto requests = MixedRequests(testing::LoadTestJson(std::string(model) + "/reference.json"));
    ASSERT_FALSE(session->runner().can_run_ahead());  // the CPU default
    const Outcome plain = Generate(session->runner(), *session, requests);

    LocalRunner local(session->stage(), nullptr, /*run_ahead=*/true);
    testing::CountingRunner ahead(local);
    const Outcome got = Generate(ahead, *session, requests);
    ExpectSame(got, plain, requests.size());
    EXPECT_GT(ahead.continuations, 0) << model;
    EXPECT_EQ(ahead.max_in_flight, 2) << model;
    EXPECT_EQ(session->blocks().num_used_blocks(), 0) << model;

    testing::CountingRunner off(local);
    const Outcome declined = Generate(off, *session, requests, {.run_ahead = false});
    ExpectSame(declined, plain, requests.size());
    EXPECT_EQ(off.continuations, 0) << model;
  }
}

TEST(RunAhead, EachGreedyFixturePromptAloneMatchesTheFixture) {
  auto session = OpenMini("llama-mini", size_t{64} << 20);
  ASSERT_NE(session, nullptr);
  const auto ref = testing::LoadTestJson("llama-mini/reference.json");
  const auto prompts = FixturePrompts(ref, 24);
  LocalRunner local(session->stage(), nullptr, /*run_ahead=*/true);
  testing::CountingRunner ahead(local);
  for (size_t p = 0; p < prompts.size(); ++p) {
    const Outcome got = Generate(ahead, *session, {prompts[p]});
    ASSERT_EQ(got.results.size(), 1u);
    EXPECT_EQ(got.results[0].output_ids, ref["prompts"][p]["greedy"].get<std::vector<int32_t>>()) << p;
  }
  // Alone, every step after the prompt's runs ahead but the one after the
  // last token.
  EXPECT_EQ(ahead.continuations, static_cast<int>(prompts.size()) * (24 - 1));
}

TEST(RunAhead, ATinyKvCachePreemptsAndEveryRequestStillMatches) {
  auto big = OpenMini("llama-mini", size_t{64} << 20);
  const auto ref = testing::LoadTestJson("llama-mini/reference.json");
  auto requests = FixturePrompts(ref, 24);
  for (const auto& r : MixedRequests(ref)) requests.push_back(r);
  const Outcome plain = Generate(big->runner(), *big, requests);
  // 6 blocks of 16 tokens (K+V, 4 layers, 2 KV heads of 64, f32).
  auto tiny = OpenMini("llama-mini", 6 * size_t{2 * 4 * 2 * 64 * 4 * 16});
  ASSERT_EQ(tiny->blocks().num_blocks(), 6);
  LocalRunner local(tiny->stage(), nullptr, /*run_ahead=*/true);
  testing::CountingRunner ahead(local);
  Generator generator(ahead, tiny->tokenizer(), tiny->blocks(), SchedulerOptions{});
  auto results = generator.Generate(requests);
  ASSERT_TRUE(results.ok()) << results.status().ToString();
  for (size_t i = 0; i < requests.size(); ++i) {
    EXPECT_EQ(results.value()[i].output_ids, plain.results[i].output_ids) << "request " << i;
  }
  EXPECT_GT(ahead.continuations, 0);
  EXPECT_EQ(tiny->blocks().num_used_blocks(), 0);
}

TEST(RunAhead, CancellingWithTwoStepsInFlightFreesEverythingAndSparesTheOthers) {
  auto session = OpenMini("llama-mini", size_t{64} << 20);
  const auto ref = testing::LoadTestJson("llama-mini/reference.json");
  const auto prompts = FixturePrompts(ref, 24);
  LocalRunner local(session->stage(), nullptr, /*run_ahead=*/true);
  testing::CountingRunner ahead(local);
  Scheduler scheduler(ahead, session->tokenizer(), session->blocks());
  std::map<uint64_t, RequestEvent> finals;
  std::map<uint64_t, int> tokens;
  for (uint64_t id : {1, 2}) {
    scheduler.Add(id, prompts[id - 1], [&, id](const RequestEvent& e) {
      if (e.final) finals[id] = e;
      tokens[id] += static_cast<int>(e.token_ids.size());
    });
  }
  while (tokens[1] < 5) ASSERT_TRUE(scheduler.Step().ok());
  ASSERT_GT(ahead.continuations, 0);
  ASSERT_TRUE(scheduler.Cancel(1));
  while (!scheduler.Idle()) ASSERT_TRUE(scheduler.Step().ok());
  EXPECT_EQ(finals[1].result.finish_reason, FinishReason::kCancelled);
  EXPECT_EQ(finals[2].result.finish_reason, FinishReason::kLength);
  EXPECT_EQ(finals[2].result.output_ids, ref["prompts"][1]["greedy"].get<std::vector<int32_t>>());
  EXPECT_EQ(session->blocks().num_used_blocks(), 0);
}

// The server's loop: requests that arrive while steps run ahead join at the
// next step, a cancel frees its blocks, and the others stream the fixture.
TEST(RunAhead, EngineTakesLateRequestsAndCancelsWhileRunningAhead) {
  auto session = OpenMini("llama-mini", size_t{64} << 20);
  const auto ref = testing::LoadTestJson("llama-mini/reference.json");
  const auto prompts = FixturePrompts(ref, 24);
  LocalRunner local(session->stage(), nullptr, /*run_ahead=*/true);
  testing::CountingRunner ahead(local);
  Engine engine(ahead, session->tokenizer(), session->blocks(), {});
  testing::EventCollector events;
  GenerationRequest endless = prompts[0];
  endless.max_new_tokens = 400;
  auto cancelled = engine.Submit(endless, events.Sink(-1));
  ASSERT_TRUE(cancelled.ok());
  Status loop;
  std::thread t([&] { loop = engine.Run(); });
  ASSERT_TRUE(events.WaitTokens(-1, 5));
  for (size_t p = 0; p < prompts.size(); ++p) {
    ASSERT_TRUE(engine.Submit(prompts[p], events.Sink(static_cast<int>(p))).ok());
  }
  ASSERT_TRUE(events.WaitTokens(0, 3));
  engine.Cancel(*cancelled);
  ASSERT_TRUE(events.WaitFinals(prompts.size() + 1));
  for (int i = 0; i < 400 && !engine.Idle(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(engine.Stats().kv_usage, 0.0);
  engine.Stop();
  t.join();
  EXPECT_TRUE(loop.ok()) << loop.ToString();
  EXPECT_EQ(events.Get(-1).final.result.finish_reason, FinishReason::kCancelled);
  for (size_t p = 0; p < prompts.size(); ++p) {
    EXPECT_EQ(events.Get(static_cast<int>(p)).final.result.output_ids,
              ref["prompts"][p]["greedy"].get<std::vector<int32_t>>())
        << p;
  }
  EXPECT_GT(ahead.continuations, 0);
}

}  // namespace
}  // namespace baton
