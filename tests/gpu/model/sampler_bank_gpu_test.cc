// SamplerBank through CudaBackend::SampleTokens against the same bank on
// host logits (every row sampled by the host Sampler): sequences with
// seeded sampling, repetition penalty, logprobs and a re-registration after
// preemption (sampler_draws_done) get the same ids, step after step, so the
// bank's copy of each Sampler's random stream stays in step with it.
#include <gtest/gtest.h>

#include <random>

#include "runtime/backend/cuda/make_cuda_backend.h"
#include "stages/sampler_bank.h"

namespace baton {
namespace {

TEST(SamplerBankOnGpu, SameTokensAsHostSamplingStepAfterStep) {
  if (CudaDeviceCount() == 0) GTEST_SKIP() << "no CUDA GPU visible";
  auto made = MakeCudaBackend(DType::kF32, 0);
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  Backend& gpu = **made;
  const int64_t vocab = 5000;
  const int num_seqs = 10, steps = 12;
  std::mt19937 rng(99);
  std::normal_distribution<float> normal(0.0f, 2.5f);
  SamplerBank on_gpu, on_host;
  std::vector<int32_t> last(num_seqs, 1);
  int device_rows = 0;
  for (int step = 0; step < steps; ++step) {
    StepPlan plan;
    for (int s = 0; s < num_seqs; ++s) {
      SequenceStep seq;
      seq.seq_id = s;
      // Sequence 3 is "preempted" at step 6: registered again with the
      // draws it already made, its history rebuilt from one token.
      const bool registering = step == 0 || (s == 3 && step == 6);
      seq.num_new_tokens = step == 0 ? 4 : 1;
      if (registering) {
        seq.has_sampling = true;
        seq.sampling.temperature = s == 0 ? 0.0f : 0.7f + 0.1f * static_cast<float>(s % 4);
        seq.sampling.top_k = s % 3 == 1 ? 40 : 0;
        seq.sampling.top_p = s % 4 == 2 ? 0.9f : 1.0f;
        seq.sampling.min_p = s == 5 ? 0.1f : 0.0f;
        seq.sampling.repetition_penalty = s % 2 == 1 ? 1.3f : 1.0f;
        seq.sampling.seed = 1000 + static_cast<uint64_t>(s);
        seq.logprobs = s == 4 ? 3 : -1;
        seq.sampler_draws_done = step == 0 ? 0 : step;
      }
      for (int t = 0; t < seq.num_new_tokens; ++t) plan.token_ids.push_back(step == 0 ? 7 * s + t : last[s]);
      plan.seqs.push_back(seq);
    }
    Tensor logits = Tensor::Empty({num_seqs, vocab}, DType::kF32);
    for (int64_t i = 0; i < logits.numel(); ++i) logits.data<float>()[i] = normal(rng);
    auto host = on_host.Sample(plan, logits);
    auto device = on_gpu.Sample(plan, gpu.Upload(logits, DType::kF32), gpu);
    ASSERT_TRUE(host.ok()) << host.status().ToString();
    ASSERT_TRUE(device.ok()) << device.status().ToString();
    EXPECT_EQ(device->tokens, host->tokens) << "step " << step;
    ASSERT_EQ(device->logprobs.size(), host->logprobs.size());
    for (size_t i = 0; i < host->logprobs.size(); ++i) {
      EXPECT_EQ(device->logprobs[i].logprob, host->logprobs[i].logprob);
      EXPECT_EQ(device->logprobs[i].top, host->logprobs[i].top);
    }
    for (int s = 0; s < num_seqs; ++s) last[s] = host->tokens[s];
    device_rows += num_seqs;
  }
  EXPECT_EQ(on_gpu.size(), static_cast<size_t>(num_seqs));
  std::printf("  %d rows sampled through the GPU bank\n", device_rows);
}

}  // namespace
}  // namespace baton
