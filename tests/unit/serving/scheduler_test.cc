// The Scheduler against FakeRunner, whose tokens depend on what it reads
// back from its paged KV store: whatever the batching, chunking,
// preemption, prefix sharing or cancellation, every request must produce
// exactly what it produces alone (FakeReference).
#include "runtime/serving/scheduler.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

#include "tests/unit/serving/fake_runner.h"

namespace baton {
namespace {

using testing::FakeReference;
using testing::FakeRunner;

struct Stream {
  std::vector<int32_t> streamed;  // token events, in order
  std::vector<TokenLogprobs> logprobs;
  RequestEvent final;
  int finals = 0;
};

class Harness {
 public:
  Harness(FakeRunner& runner, KvBlockManager& blocks, SchedulerOptions options)
      : scheduler(runner, nullptr, blocks, options) {}

  uint64_t Add(const GenerationRequest& r) {
    EXPECT_TRUE(scheduler.Validate(r).ok()) << scheduler.Validate(r).ToString();
    const uint64_t id = next_id++;
    Stream* s = &streams[id];
    scheduler.Add(id, r, [s](const RequestEvent& e) {
      if (e.final) {
        s->final = e;
        ++s->finals;
        return;
      }
      EXPECT_EQ(s->finals, 0) << "token after the final event";
      s->streamed.insert(s->streamed.end(), e.token_ids.begin(), e.token_ids.end());
      s->logprobs.insert(s->logprobs.end(), e.logprobs.begin(), e.logprobs.end());
    });
    return id;
  }
  void RunToEnd() {
    for (int guard = 0; !scheduler.Idle() && guard < 100000; ++guard) ASSERT_TRUE(scheduler.Step().ok());
    ASSERT_TRUE(scheduler.Idle());
  }

  Scheduler scheduler;
  std::map<uint64_t, Stream> streams;
  uint64_t next_id = 1;
};

std::vector<int32_t> RandomPrompt(std::mt19937& rng, int len, int vocab) {
  std::vector<int32_t> p(static_cast<size_t>(len));
  for (auto& t : p) t = static_cast<int32_t>(rng() % static_cast<uint32_t>(vocab));
  return p;
}

void ExpectAlone(const Stream& s, const GenerationRequest& r, const ModelConfig& config, const std::string& what) {
  const GenerationResult ref = FakeReference(r, config);
  EXPECT_EQ(s.finals, 1) << what;
  EXPECT_EQ(s.final.result.output_ids, ref.output_ids) << what;
  EXPECT_EQ(s.final.result.finish_reason, ref.finish_reason) << what;
  EXPECT_EQ(s.streamed, ref.output_ids) << what;
  EXPECT_EQ(s.final.prompt_tokens, static_cast<int>(r.prompt_ids.size())) << what;
}

TEST(Scheduler, ManyRequestsEqualEachAloneThroughChunkingPreemptionAndSharing) {
  for (int in_flight : {1, 3}) {
    // 12 blocks of 4 tokens: room for about two requests at once.
    FakeRunner runner(12, 4, in_flight);
    KvBlockManager blocks(12, 4);
    Harness h(runner, blocks, {.micro_batches = 0, .max_batch_tokens = 7, .prefix_caching = true});
    std::mt19937 rng(7);
    std::vector<GenerationRequest> requests;
    const auto shared = RandomPrompt(rng, 12, 97);  // a common "system prompt"
    for (int i = 0; i < 24; ++i) {
      GenerationRequest r;
      r.prompt_ids = RandomPrompt(rng, 1 + static_cast<int>(rng() % 22), 97);
      if (i % 3 == 0) r.prompt_ids.insert(r.prompt_ids.begin(), shared.begin(), shared.begin() + 10);
      r.prompt_ids.resize(std::min<size_t>(r.prompt_ids.size(), 24));
      r.max_new_tokens = 1 + static_cast<int>(rng() % 20);
      r.sampling.temperature = i % 2 ? 0.0f : 0.8f;
      r.sampling.seed = static_cast<uint64_t>(100 + i);
      if (i % 4 == 1) r.sampling.repetition_penalty = 1.3f;
      requests.push_back(r);
      h.Add(r);
    }
    h.RunToEnd();
    for (size_t i = 0; i < requests.size(); ++i) {
      ExpectAlone(h.streams[i + 1], requests[i], runner.config(), "request " + std::to_string(i));
    }
    EXPECT_GT(h.scheduler.preemptions(), 0) << "the cache was meant to force preemption";
    EXPECT_LE(runner.max_step_tokens(), 7);
    EXPECT_EQ(blocks.num_used_blocks(), 0);
    EXPECT_EQ(blocks.num_free_blocks(), 12);
    EXPECT_EQ(h.scheduler.micro_batches(), in_flight);
  }
}

TEST(Scheduler, APromptCutIntoChunksSamplesOnlyAfterItsLastChunk) {
  FakeRunner runner(32, 4);
  KvBlockManager blocks(32, 4);
  Harness h(runner, blocks, {.max_batch_tokens = 5});
  std::mt19937 rng(3);
  GenerationRequest r;
  r.prompt_ids = RandomPrompt(rng, 23, 97);
  r.max_new_tokens = 6;
  r.sampling.temperature = 1.0f;
  r.sampling.seed = 42;
  r.sampling.repetition_penalty = 1.2f;  // the fake checks the sampler saw the whole prompt
  h.Add(r);
  h.RunToEnd();
  ExpectAlone(h.streams[1], r, runner.config(), "chunked");
  // 23 prompt tokens in chunks of 5: 4 chunks that sample nothing, then the
  // last one; the sampler registered with the first.
  ASSERT_GE(runner.plans().size(), 5u);
  for (size_t i = 0; i < 5; ++i) {
    const SequenceStep& s = runner.plans()[i].seqs.at(0);
    EXPECT_EQ(s.num_new_tokens, i < 4 ? 5 : 3) << i;
    EXPECT_EQ(s.sample, i == 4) << i;
    EXPECT_EQ(s.has_sampling, i == 0) << i;
  }
}

TEST(Scheduler, DecodesGoFirstSoALongPromptDoesNotStallThem) {
  FakeRunner runner(64, 4);
  KvBlockManager blocks(64, 4);
  Harness h(runner, blocks, {.max_batch_tokens = 8});
  std::mt19937 rng(5);
  GenerationRequest a;
  a.prompt_ids = {5};
  a.max_new_tokens = 40;
  h.Add(a);
  ASSERT_TRUE(h.scheduler.Step().ok());  // a is decoding now
  GenerationRequest b;
  b.prompt_ids = RandomPrompt(rng, 60, 97);
  b.max_new_tokens = 3;
  h.Add(b);
  h.RunToEnd();
  ExpectAlone(h.streams[1], a, runner.config(), "a");
  ExpectAlone(h.streams[2], b, runner.config(), "b");
  int chunk_steps = 0, prompt_done = 0;
  for (const StepPlan& p : runner.plans()) {
    if (p.seqs.size() < 2) continue;
    EXPECT_EQ(p.seqs[0].num_new_tokens, 1);  // a's decode token comes first
    if (prompt_done == 60) continue;         // b decodes too
    EXPECT_EQ(p.seqs[1].num_new_tokens, std::min(7, 60 - prompt_done));
    prompt_done += p.seqs[1].num_new_tokens;
    ++chunk_steps;
  }
  EXPECT_EQ(chunk_steps, 9);  // b's 60 tokens, 7 per step beside a
}

TEST(Scheduler, PrefixCacheSkipsWholeCachedBlocksAndKeepsTheOutput) {
  FakeRunner runner(64, 4);
  KvBlockManager blocks(64, 4);
  Harness h(runner, blocks, {});
  std::mt19937 rng(11);
  GenerationRequest a;
  a.prompt_ids = RandomPrompt(rng, 37, 97);
  a.max_new_tokens = 5;
  h.Add(a);
  h.RunToEnd();
  EXPECT_EQ(h.streams[1].final.result.cached_prompt_tokens, 0);

  GenerationRequest b = a;  // the same 33 tokens, then its own
  b.prompt_ids.resize(33);
  for (int32_t t : RandomPrompt(rng, 7, 97)) b.prompt_ids.push_back(t);
  b.sampling.temperature = 0.7f;
  h.Add(b);
  GenerationRequest same = a;  // all of it: whole blocks, one token left to compute
  h.Add(same);
  GenerationRequest penalized = a;
  penalized.sampling.repetition_penalty = 1.1f;
  h.Add(penalized);
  const int64_t hits_before = blocks.prefix_hits();
  h.RunToEnd();
  ExpectAlone(h.streams[2], b, runner.config(), "b");
  ExpectAlone(h.streams[3], same, runner.config(), "same");
  ExpectAlone(h.streams[4], penalized, runner.config(), "penalized");
  EXPECT_EQ(h.streams[2].final.result.cached_prompt_tokens, 32);
  EXPECT_EQ(h.streams[3].final.result.cached_prompt_tokens, 36);
  EXPECT_EQ(h.streams[4].final.result.cached_prompt_tokens, 0);
  EXPECT_EQ(blocks.prefix_hits() - hits_before, 8 + 9);
  EXPECT_EQ(blocks.num_used_blocks(), 0);
  // The second request's first step computed only what was not cached.
  bool saw_tail = false;
  for (const StepPlan& p : runner.plans()) {
    for (const SequenceStep& s : p.seqs) saw_tail |= s.has_sampling && s.context_len == 40 && s.num_new_tokens == 8;
  }
  EXPECT_TRUE(saw_tail);
}

TEST(Scheduler, CancelEndsAtOnceFreesBlocksAndDropsTokensInFlight) {
  FakeRunner runner(64, 4, /*in_flight=*/2);
  KvBlockManager blocks(64, 4);
  Harness h(runner, blocks, {});
  std::vector<GenerationRequest> requests(3);
  for (int i = 0; i < 3; ++i) {
    requests[i].prompt_ids = {1 + i, 2, 3, 4, 5, 6, 7};
    requests[i].max_new_tokens = 30;
    h.Add(requests[i]);
  }
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(h.scheduler.Step().ok());
  ASSERT_GT(runner.in_flight(), 0);
  const int used = blocks.num_used_blocks();
  const size_t streamed = h.streams[2].streamed.size();
  ASSERT_GT(streamed, 0u);
  ASSERT_TRUE(h.scheduler.Cancel(2));
  EXPECT_FALSE(h.scheduler.Cancel(2));  // already gone
  EXPECT_EQ(h.streams[2].finals, 1);
  EXPECT_EQ(h.streams[2].final.result.finish_reason, FinishReason::kCancelled);
  EXPECT_LT(blocks.num_used_blocks(), used);
  h.RunToEnd();
  EXPECT_EQ(h.streams[2].streamed.size(), streamed);  // nothing after the cancel
  ExpectAlone(h.streams[1], requests[0], runner.config(), "0");
  ExpectAlone(h.streams[3], requests[2], runner.config(), "2");
  EXPECT_EQ(blocks.num_used_blocks(), 0);
}

TEST(Scheduler, EndsAtEosAndAtOnceForZeroNewTokens) {
  FakeRunner runner(64, 4);
  GenerationRequest r;
  r.prompt_ids = {9, 8, 7};
  r.max_new_tokens = 10;
  const auto free_run = FakeReference(r, runner.config());
  runner.mutable_config().eos_token_ids = {free_run.output_ids[3]};
  KvBlockManager blocks(64, 4);
  Harness h(runner, blocks, {});
  h.Add(r);
  GenerationRequest ignore = r;
  ignore.ignore_eos = true;
  h.Add(ignore);
  GenerationRequest none = r;
  none.max_new_tokens = 0;
  h.Add(none);
  EXPECT_EQ(h.streams[3].finals, 1);  // at once, without a step
  EXPECT_TRUE(h.streams[3].final.result.output_ids.empty());
  h.RunToEnd();
  EXPECT_EQ(h.streams[1].final.result.finish_reason, FinishReason::kEos);
  EXPECT_EQ(h.streams[1].final.result.output_ids.size(), 4u);  // the EOS token included
  ExpectAlone(h.streams[1], r, runner.config(), "eos");
  EXPECT_EQ(h.streams[2].final.result.output_ids.size(), 10u);
  EXPECT_EQ(h.streams[2].final.result.finish_reason, FinishReason::kLength);
}

TEST(Scheduler, LogprobsReachOnlyTheRequestThatAskedForThem) {
  FakeRunner runner(64, 4);
  KvBlockManager blocks(64, 4);
  Harness h(runner, blocks, {});
  GenerationRequest asks;
  asks.prompt_ids = {1, 2, 3};
  asks.max_new_tokens = 4;
  asks.logprobs = 2;
  GenerationRequest plain = asks;
  plain.logprobs = 0;
  plain.prompt_ids = {4, 5};
  h.Add(asks);
  h.Add(plain);
  h.RunToEnd();
  const Stream& a = h.streams[1];
  ASSERT_EQ(a.logprobs.size(), 4u);
  for (size_t i = 0; i < 4; ++i)
    EXPECT_EQ(a.logprobs[i].logprob, -static_cast<float>(a.streamed[i]));  // the fake's marker
  EXPECT_TRUE(h.streams[2].logprobs.empty());
}

TEST(Scheduler, ARunnerFailureEndsEveryRequestWithTheError) {
  FakeRunner runner(64, 4, 2);
  KvBlockManager blocks(64, 4);
  Harness h(runner, blocks, {});
  GenerationRequest r;
  r.prompt_ids = {1, 2, 3};
  r.max_new_tokens = 20;
  for (int i = 0; i < 5; ++i) h.Add(r);
  runner.FailAtSubmit(4);
  Status st;
  for (int i = 0; i < 100 && st.ok(); ++i) st = h.scheduler.Step();
  ASSERT_FALSE(st.ok());
  h.scheduler.FailAll(st);
  EXPECT_TRUE(h.scheduler.Idle());
  for (auto& [id, s] : h.streams) {
    EXPECT_EQ(s.finals, 1) << id;
    EXPECT_EQ(s.final.result.finish_reason, FinishReason::kError) << id;
    EXPECT_NE(s.final.error.message().find("injected failure"), std::string::npos) << id;
  }
  EXPECT_EQ(blocks.num_used_blocks(), 0);
}

TEST(Scheduler, ValidateNamesTheFieldAtFault) {
  FakeRunner runner(8, 4);
  KvBlockManager blocks(8, 4);
  Scheduler s(runner, nullptr, blocks);
  GenerationRequest good;
  good.prompt_ids = {1, 2};
  good.max_new_tokens = 4;
  ASSERT_TRUE(s.Validate(good).ok());
  auto expect = [&](GenerationRequest r, const std::string& needle) {
    Status st = s.Validate(r);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << needle;
    EXPECT_NE(st.message().find(needle), std::string::npos) << st.ToString();
  };
  GenerationRequest r = good;
  r.logprobs = 21;
  expect(r, "logprobs");
  r = good;
  r.logprobs = -1;
  expect(r, "logprobs");
  r = good;
  r.prompt_ids = {1, 97};
  expect(r, "97");
  r = good;
  r.max_new_tokens = 31;  // 33 tokens > 8 blocks of 4
  expect(r, "KV cache");
  r = good;
  r.sampling.temperature = -1;
  expect(r, "temperature");
  r = good;
  r.stop = {"x"};
  expect(r, "tokenizer");
  r = good;
  r.prompt_ids.clear();
  expect(r, "empty");
}

}  // namespace
}  // namespace baton
