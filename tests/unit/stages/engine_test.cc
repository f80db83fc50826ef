// The serving Engine over the real model (LocalRunner on the bundled tiny
// fixtures): whatever runs beside it, however the prompt is chunked, cached
// or preempted, a request produces what it produces alone, and the fixture's
// greedy tokens. Run() runs on a thread of its own, as on rank 0.
#include "runtime/serving/engine.h"

#include <gtest/gtest.h>

#include <thread>

#include "stages/model_session.h"
#include "tests/test_data.h"
#include "tests/unit/serving/event_collector.h"
#include "tests/unit/stages/mini_session.h"

namespace baton {
namespace {

using testing::FixturePrompts;
using testing::OpenMini;

using Stream = testing::EventCollector::Stream;

// Runs the requests through one Engine, all queued before the loop starts
// so that they share steps. Returns each request's stream.
std::vector<Stream> RunTogether(ModelSession& session, const std::vector<GenerationRequest>& requests,
                                EngineOptions options = {}, EngineStats* stats = nullptr) {
  Engine engine(session.runner(), session.tokenizer(), session.blocks(), options);
  testing::EventCollector events;
  for (size_t i = 0; i < requests.size(); ++i) {
    auto id = engine.Submit(requests[i], events.Sink(static_cast<int>(i)));
    EXPECT_TRUE(id.ok()) << id.status().ToString();
  }
  Status loop;
  std::thread t([&] { loop = engine.Run(); });
  EXPECT_TRUE(events.WaitFinals(requests.size()));
  for (int i = 0; i < 200 && !engine.Idle(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  if (stats) *stats = engine.Stats();
  engine.Stop();
  t.join();
  EXPECT_TRUE(loop.ok()) << loop.ToString();
  std::vector<Stream> out;
  for (size_t i = 0; i < requests.size(); ++i) out.push_back(events.Get(static_cast<int>(i)));
  return out;
}

Stream RunAlone(ModelSession& session, const GenerationRequest& request) {
  return RunTogether(session, {request}, {.prefix_caching = false})[0];
}

// Sampling settings of every kind, one per request.
std::vector<GenerationRequest> MixedRequests(const nlohmann::json& ref) {
  auto prompts = FixturePrompts(ref, 20);
  std::vector<GenerationRequest> requests;
  for (int i = 0; i < 12; ++i) {
    GenerationRequest r = prompts[static_cast<size_t>(i) % prompts.size()];
    SamplingParams& s = r.sampling;
    s.seed = static_cast<uint64_t>(1000 + i);
    switch (i % 6) {
      case 0:
        s.temperature = 0.9f;
        s.top_k = 40;
        break;
      case 1:
        s.temperature = 0.7f;
        s.top_p = 0.9f;
        break;
      case 2:
        s.temperature = 1.2f;
        s.min_p = 0.05f;
        break;
      case 3:
        s.temperature = 0.0f;
        s.repetition_penalty = 1.3f;
        break;
      case 4:
        s.temperature = 0.8f;
        s.top_k = 20;
        s.repetition_penalty = 1.2f;
        r.logprobs = 3;
        break;
      case 5:
        s.temperature = 0.0f;
        r.logprobs = 5;
        break;
    }
    if (i >= 6) r.stop = {"the"};
    requests.push_back(r);
  }
  return requests;
}

void ExpectSame(const Stream& got, const Stream& alone, const std::string& what) {
  EXPECT_EQ(got.finals, 1) << what;
  EXPECT_EQ(got.final.result.output_ids, alone.final.result.output_ids) << what;
  EXPECT_EQ(got.final.result.text, alone.final.result.text) << what;
  EXPECT_EQ(got.final.result.finish_reason, alone.final.result.finish_reason) << what;
  EXPECT_EQ(got.tokens, got.final.result.output_ids) << what;
  EXPECT_EQ(got.text, got.final.result.text) << what;
}

TEST(Engine, ThirtyTwoConcurrentGreedyStreamsEqualTheFixtureAndEachAlone) {
  auto session = OpenMini("llama-mini", size_t{64} << 20);
  const auto ref = testing::LoadTestJson("llama-mini/reference.json");
  const auto prompts = FixturePrompts(ref, 24);
  std::vector<Stream> alone;
  for (const auto& r : prompts) alone.push_back(RunAlone(*session, r));

  Engine engine(session->runner(), session->tokenizer(), session->blocks(), {});
  testing::EventCollector events;
  Status loop;
  std::thread t([&] { loop = engine.Run(); });
  std::vector<std::thread> clients;
  for (int c = 0; c < 4; ++c) {
    clients.emplace_back([&, c] {
      for (int i = c; i < 32; i += 4) {
        EXPECT_TRUE(engine.Submit(prompts[static_cast<size_t>(i) % prompts.size()], events.Sink(i)).ok());
      }
    });
  }
  for (auto& c : clients) c.join();
  ASSERT_TRUE(events.WaitFinals(32));
  for (int i = 0; i < 32; ++i) {
    const size_t p = static_cast<size_t>(i) % prompts.size();
    const Stream s = events.Get(i);
    ExpectSame(s, alone[p], "request " + std::to_string(i));
    EXPECT_EQ(s.final.result.output_ids, ref["prompts"][p]["greedy"].get<std::vector<int32_t>>()) << i;
    EXPECT_EQ(s.final.result.text, ref["prompts"][p]["greedy_text"].get<std::string>()) << i;
    EXPECT_EQ(s.final.prompt_tokens, static_cast<int>(prompts[p].prompt_ids.size()));
  }
  engine.Stop();
  t.join();
  EXPECT_TRUE(loop.ok()) << loop.ToString();
}

TEST(Engine, MixedSamplingInOneBatchEqualsEachAloneWithTheSameSeed) {
  auto session = OpenMini("gpt2-mini", size_t{64} << 20);
  const auto requests = MixedRequests(testing::LoadTestJson("gpt2-mini/reference.json"));
  const auto together = RunTogether(*session, requests);
  for (size_t i = 0; i < requests.size(); ++i) {
    const Stream alone = RunAlone(*session, requests[i]);
    ExpectSame(together[i], alone, "request " + std::to_string(i));
    const size_t n = together[i].final.result.output_ids.size();
    if (requests[i].logprobs > 0) {
      ASSERT_EQ(together[i].logprobs.size(), n) << i;
      for (const TokenLogprobs& lp : together[i].logprobs) {
        EXPECT_EQ(lp.top.size(), static_cast<size_t>(requests[i].logprobs)) << i;
        EXPECT_LE(lp.logprob, 0.0f) << i;
      }
    } else {
      EXPECT_TRUE(together[i].logprobs.empty()) << i;
    }
  }
}

TEST(Engine, ATinyKvCachePreemptsAndEveryRequestStillMatchesAlone) {
  auto big = OpenMini("llama-mini", size_t{64} << 20);
  const auto ref = testing::LoadTestJson("llama-mini/reference.json");
  auto requests = FixturePrompts(ref, 24);
  for (const auto& r : MixedRequests(ref)) requests.push_back(r);
  // 6 blocks of 16 tokens (K+V, 4 layers, 2 KV heads of 64, f32): the
  // longest request alone needs 5.
  auto tiny = OpenMini("llama-mini", 6 * size_t{2 * 4 * 2 * 64 * 4 * 16});
  ASSERT_EQ(tiny->blocks().num_blocks(), 6);
  std::vector<Stream> alone;
  for (const auto& r : requests) alone.push_back(RunAlone(*big, r));
  for (bool prefix_caching : {true, false}) {
    EngineStats stats;
    const auto together = RunTogether(*tiny, requests, {.prefix_caching = prefix_caching}, &stats);
    EXPECT_GT(stats.preemptions, 0);
    for (size_t i = 0; i < requests.size(); ++i) {
      ExpectSame(together[i], alone[i], "request " + std::to_string(i));
      if (i < 6) {
        EXPECT_EQ(together[i].final.result.output_ids, ref["prompts"][i]["greedy"].get<std::vector<int32_t>>()) << i;
      }
    }
    EXPECT_EQ(tiny->blocks().num_used_blocks(), 0);
  }
}

TEST(Engine, ChunkedPrefillEqualsUnchunked) {
  auto session = OpenMini("llama-mini", size_t{64} << 20);
  const auto ref = testing::LoadTestJson("llama-mini/reference.json");
  auto requests = FixturePrompts(ref, 16);
  for (const auto& r : MixedRequests(ref)) requests.push_back(r);
  const auto whole = RunTogether(*session, requests, {.prefix_caching = false});
  const auto chunked = RunTogether(*session, requests, {.max_batch_tokens = 7, .prefix_caching = false});
  for (size_t i = 0; i < requests.size(); ++i) ExpectSame(chunked[i], whole[i], "request " + std::to_string(i));
  for (size_t i = 0; i < 6; ++i) {
    EXPECT_EQ(chunked[i].final.result.output_ids,
              std::vector<int32_t>(ref["prompts"][i]["greedy"].begin(), ref["prompts"][i]["greedy"].begin() + 16));
  }
}

TEST(Engine, ARepeatedPrefixHitsTheCacheAndGivesTheSameOutput) {
  auto session = OpenMini("llama-mini", size_t{64} << 20);
  const auto ref = testing::LoadTestJson("llama-mini/reference.json");
  const GenerationRequest first = FixturePrompts(ref, 24)[1];  // 45 tokens
  ASSERT_EQ(first.prompt_ids.size(), 45u);
  GenerationRequest longer = first;  // the same 45, then more
  longer.prompt_ids.insert(longer.prompt_ids.end(), {17, 99, 250});
  longer.sampling.temperature = 0.8f;
  longer.sampling.seed = 5;

  Engine engine(session->runner(), session->tokenizer(), session->blocks(), {});
  testing::EventCollector events;
  Status loop;
  std::thread t([&] { loop = engine.Run(); });
  ASSERT_TRUE(engine.Submit(first, events.Sink(0)).ok());
  ASSERT_TRUE(events.WaitFinals(1));
  EXPECT_EQ(events.Get(0).final.result.cached_prompt_tokens, 0);
  const int64_t hits = engine.Stats().prefix_hits;
  ASSERT_TRUE(engine.Submit(first, events.Sink(1)).ok());
  ASSERT_TRUE(engine.Submit(longer, events.Sink(2)).ok());
  ASSERT_TRUE(events.WaitFinals(3));
  for (int i = 0; i < 200 && !engine.Idle(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const EngineStats stats = engine.Stats();
  engine.Stop();
  t.join();
  ASSERT_TRUE(loop.ok());

  const auto greedy = ref["prompts"][1]["greedy"].get<std::vector<int32_t>>();
  EXPECT_EQ(events.Get(0).final.result.output_ids, greedy);
  EXPECT_EQ(events.Get(1).final.result.output_ids, greedy);
  // 44 tokens may come from the cache (one is left to compute): 2 blocks of 16.
  EXPECT_EQ(events.Get(1).final.result.cached_prompt_tokens, 32);
  EXPECT_EQ(events.Get(2).final.result.cached_prompt_tokens, 32);
  EXPECT_GE(stats.prefix_hits - hits, 4);
  EXPECT_GT(stats.prefix_queries, stats.prefix_hits - hits);
  ExpectSame(events.Get(2), RunAlone(*session, longer), "longer");
  EXPECT_EQ(stats.kv_usage, 0.0);
}

TEST(Engine, CancellingMidStreamReturnsKvUsageToIdle) {
  auto session = OpenMini("llama-mini", size_t{64} << 20);
  const auto ref = testing::LoadTestJson("llama-mini/reference.json");
  auto requests = FixturePrompts(ref, 600);
  Engine engine(session->runner(), session->tokenizer(), session->blocks(), {});
  EXPECT_EQ(engine.Stats().kv_usage, 0.0);
  testing::EventCollector events;
  std::vector<Engine::RequestId> ids;
  for (size_t i = 0; i < requests.size(); ++i) {
    auto id = engine.Submit(requests[i], events.Sink(static_cast<int>(i)));
    ASSERT_TRUE(id.ok());
    ids.push_back(*id);
  }
  Status loop;
  std::thread t([&] { loop = engine.Run(); });
  ASSERT_TRUE(events.WaitTokens(0, 5));
  EXPECT_GT(engine.Stats().kv_usage, 0.0);
  for (auto id : ids) engine.Cancel(id);
  ASSERT_TRUE(events.WaitFinals(requests.size()));
  for (int i = 0; i < 400 && !engine.Idle(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_TRUE(engine.Idle());
  const EngineStats stats = engine.Stats();
  EXPECT_EQ(stats.kv_usage, 0.0);
  EXPECT_EQ(stats.running, 0);
  for (size_t i = 0; i < requests.size(); ++i) {
    const Stream s = events.Get(static_cast<int>(i));
    EXPECT_EQ(s.final.result.finish_reason, FinishReason::kCancelled) << i;
    EXPECT_LT(s.tokens.size(), 600u) << i;
    // What streamed before the cancel is the greedy continuation.
    const auto greedy = ref["prompts"][i]["greedy"].get<std::vector<int32_t>>();
    const size_t n = std::min(s.tokens.size(), greedy.size());
    EXPECT_EQ(std::vector<int32_t>(s.tokens.begin(), s.tokens.begin() + static_cast<int64_t>(n)),
              std::vector<int32_t>(greedy.begin(), greedy.begin() + static_cast<int64_t>(n)))
        << i;
  }
  engine.Stop();
  t.join();
  EXPECT_TRUE(loop.ok());
}

TEST(Engine, InvalidFieldsAreRejectedByNameWhileGoodRequestsFinish) {
  auto session = OpenMini("gpt2-mini", size_t{8} << 20);
  const auto ref = testing::LoadTestJson("gpt2-mini/reference.json");
  const auto good = FixturePrompts(ref, 24);
  Engine engine(session->runner(), session->tokenizer(), session->blocks(), {});
  testing::EventCollector events;
  Status loop;
  std::thread t([&] { loop = engine.Run(); });
  for (size_t i = 0; i < good.size(); ++i) ASSERT_TRUE(engine.Submit(good[i], events.Sink(static_cast<int>(i))).ok());
  auto expect_bad = [&](GenerationRequest r, const std::string& needle) {
    auto st = engine.Submit(std::move(r), events.Sink(-1));
    EXPECT_EQ(st.status().code(), StatusCode::kInvalidArgument) << needle;
    EXPECT_NE(st.status().message().find(needle), std::string::npos) << st.status().ToString();
  };
  GenerationRequest r = good[0];
  r.prompt_ids = {};
  expect_bad(r, "empty");
  r = good[0];
  r.prompt_ids[2] = 2048;
  expect_bad(r, "prompt token 2");
  r = good[0];
  r.max_new_tokens = 600;
  expect_bad(r, "context");
  r = good[0];
  r.sampling.temperature = -0.5f;
  expect_bad(r, "temperature");
  r = good[0];
  r.sampling.top_p = 0.0f;
  expect_bad(r, "top_p");
  r = good[0];
  r.sampling.repetition_penalty = 0.0f;
  expect_bad(r, "repetition_penalty");
  r = good[0];
  r.logprobs = 21;
  expect_bad(r, "logprobs");
  r = good[0];
  r.stop = std::vector<std::string>(17, "x");
  expect_bad(r, "stop strings");
  r = good[0];
  r.stop = {std::string(300, 'x')};
  expect_bad(r, "stop[0]");
  ASSERT_TRUE(events.WaitFinals(good.size()));
  for (size_t i = 0; i < good.size(); ++i) {
    EXPECT_EQ(events.Get(static_cast<int>(i)).final.result.output_ids,
              ref["prompts"][i]["greedy"].get<std::vector<int32_t>>())
        << i;
  }
  EXPECT_EQ(events.Get(-1).finals, 0);  // rejected requests get no events
  engine.Stop();
  t.join();
  EXPECT_TRUE(loop.ok());
}

}  // namespace
}  // namespace baton
