// Decode steps replayed from CUDA graphs (Stage's padded batch buckets)
// against the same steps run eagerly, on llama-mini in F32: two sessions
// (graphs on / off) run the same prefills and decode steps for several
// batch sizes, one of them crossing a context bucket (256), and must give
// the same greedy ids and logits within 1e-5 (float rounding of a padded
// GEMM and another attention split). Skips without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <random>

#include "runtime/backend/cuda/make_cuda_backend.h"
#include "stages/model_session.h"

namespace baton {
namespace {

std::string DataDir(const std::string& model) {
  const char* env = std::getenv("BATON_TEST_DATA");
  return std::string(env != nullptr && *env != '\0' ? env : BATON_TEST_DATA) + "/" + model;
}

std::unique_ptr<ModelSession> Open(bool graphs) {
  SessionOptions options;
  options.model_dir = DataDir("llama-mini");
  options.device = Device::kCuda;
  options.dtype = DType::kF32;
  options.kv_cache_bytes = size_t{64} << 20;
  auto s = ModelSession::Open(options);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  if (!s.ok()) return nullptr;
  (*s)->stage().set_decode_graphs(graphs);
  return std::move(s).value();
}

int32_t ArgMax(const float* row, int64_t vocab) {
  return static_cast<int32_t>(std::max_element(row, row + vocab) - row);
}

TEST(DecodeGraphs, EqualEagerDecodeForSeveralBatchSizes) {
  if (CudaDeviceCount() == 0) GTEST_SKIP() << "no CUDA GPU visible";
  auto graph = Open(true), eager = Open(false);
  ASSERT_TRUE(graph && eager);
  ASSERT_TRUE(graph->stage().decode_graphs());
  const int64_t vocab = graph->config().vocab_size;
  const int kBlocksPerSeq = 24;
  std::mt19937 rng(5);
  float worst = 0.0f;
  int steps_checked = 0;
  for (int batch : {1, 3, 8, 17}) {
    ASSERT_LE(batch * kBlocksPerSeq, graph->stage().num_kv_blocks());
    std::vector<SequenceStep> seqs(batch);
    std::vector<int32_t> next(batch);
    StepPlan prefill;
    for (int s = 0; s < batch; ++s) {
      // batch 3 starts near 256 tokens, so its decode crosses a context bucket.
      const int len = batch == 3 ? 250 + s : 5 + static_cast<int>(rng() % 40);
      seqs[s].seq_id = s;
      for (int b = 0; b < kBlocksPerSeq; ++b) seqs[s].block_table.push_back(s * kBlocksPerSeq + b);
      seqs[s].num_new_tokens = len;
      seqs[s].context_len = len;
      for (int t = 0; t < len; ++t) prefill.token_ids.push_back(static_cast<int32_t>(rng() % vocab));
      prefill.seqs.push_back(seqs[s]);
    }
    for (int step = 0; step < 10; ++step) {
      StepPlan plan;
      if (step == 0) {
        plan = prefill;
      } else {
        for (int s = 0; s < batch; ++s) {
          seqs[s].num_new_tokens = 1;
          seqs[s].context_len += 1;
          plan.seqs.push_back(seqs[s]);
          plan.token_ids.push_back(next[s]);
        }
      }
      auto a = graph->stage().Forward(plan);
      auto b = eager->stage().Forward(plan);
      ASSERT_TRUE(a.ok()) << a.status().ToString();
      ASSERT_TRUE(b.ok()) << b.status().ToString();
      ASSERT_EQ(a->shape(), b->shape());
      for (int s = 0; s < batch; ++s) {
        const float* ra = a->data<float>() + s * vocab;
        const float* rb = b->data<float>() + s * vocab;
        for (int64_t v = 0; v < vocab; ++v) worst = std::max(worst, std::fabs(ra[v] - rb[v]));
        EXPECT_EQ(ArgMax(ra, vocab), ArgMax(rb, vocab)) << "batch " << batch << " step " << step << " seq " << s;
        next[s] = ArgMax(rb, vocab);
      }
      if (step > 0) ++steps_checked;
    }
  }
  std::printf("  %d decode steps, %d graphs recorded, %lld replays; worst |graph - eager| logit %.3e\n", steps_checked,
              graph->stage().num_decode_graphs(), static_cast<long long>(graph->stage().graph_replays()), worst);
  EXPECT_GT(graph->stage().graph_replays(), 20);
  EXPECT_EQ(eager->stage().graph_replays(), 0);
  EXPECT_LE(worst, 1e-5f);
}

}  // namespace
}  // namespace baton
