#include "stages/stage_partition.h"

#include <gtest/gtest.h>

namespace baton {
namespace {

ModelConfig Llama(int layers, int vocab) {
  ModelConfig c;
  c.model_type = "llama";
  c.num_layers = layers;
  c.hidden_size = 2048;
  c.num_heads = 32;
  c.num_kv_heads = 8;
  c.head_dim = 64;
  c.intermediate_size = 8192;
  c.vocab_size = vocab;
  return c;
}

std::vector<int> Counts(const std::vector<StageRange>& r) {
  std::vector<int> n;
  for (const auto& s : r) n.push_back(s.last_layer - s.first_layer);
  return n;
}

TEST(StagePartition, ContiguousAndCoveringEveryLayer) {
  for (int p = 1; p <= 4; ++p) {
    auto r = PartitionLayers(Llama(4, 2048), p);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_EQ(static_cast<int>(r->size()), p);
    EXPECT_EQ(r->front().first_layer, 0);
    EXPECT_EQ(r->back().last_layer, 4);
    for (size_t i = 1; i < r->size(); ++i) EXPECT_EQ((*r)[i].first_layer, (*r)[i - 1].last_layer);
  }
  // 4 layers over 3 stages: no other split has a cheaper most-expensive stage.
  const ModelConfig c = Llama(4, 2048);
  auto cost = [&](int first, int last) {
    return (last - first) * LayerCost(c) + (first == 0 ? EmbeddingCost(c) : 0) + (last == 4 ? HeadCost(c) : 0);
  };
  const auto n = Counts(*PartitionLayers(c, 3));
  const double chosen = std::max({cost(0, n[0]), cost(n[0], n[0] + n[1]), cost(n[0] + n[1], 4)});
  for (int a = 1; a <= 2; ++a) {
    for (int b = a + 1; b <= 3; ++b) EXPECT_LE(chosen, std::max({cost(0, a), cost(a, b), cost(b, 4)}) + 1e-6);
  }
}

TEST(StagePartition, LargeVocabularyHeadTakesLayersOffTheLastStage) {
  // llama-3.2-1b: 16 layers, a 128k-vocab head worth ~4.7 layers of compute.
  const ModelConfig c = Llama(16, 128256);
  auto r = PartitionLayers(c, 2);
  ASSERT_TRUE(r.ok());
  const auto n = Counts(*r);
  EXPECT_GT(n[0], n[1]);
  // Independent check: the chosen split is no worse than any other split.
  auto stage_cost = [&](int first, int last) {
    return (last - first) * LayerCost(c) + (first == 0 ? EmbeddingCost(c) : 0) + (last == 16 ? HeadCost(c) : 0);
  };
  const double chosen = std::max(stage_cost(0, n[0]), stage_cost(n[0], 16));
  for (int k = 1; k < 16; ++k) EXPECT_LE(chosen, std::max(stage_cost(0, k), stage_cost(k, 16)) + 1e-6);
}

TEST(StagePartition, OverrideAndErrors) {
  const ModelConfig c = Llama(16, 128256);
  EXPECT_EQ(Counts(*PartitionLayers(c, 2, {6, 10})), (std::vector<int>{6, 10}));
  auto bad_sum = PartitionLayers(c, 2, {6, 9});
  ASSERT_FALSE(bad_sum.ok());
  EXPECT_NE(bad_sum.status().message().find("sums to 15"), std::string::npos);
  EXPECT_FALSE(PartitionLayers(c, 2, {16, 0}).ok());
  EXPECT_FALSE(PartitionLayers(c, 3, {8, 8}).ok());
  auto too_many = PartitionLayers(Llama(4, 2048), 5);
  ASSERT_FALSE(too_many.ok());
  EXPECT_NE(too_many.status().message().find("5 pipeline stages"), std::string::npos);
}

}  // namespace
}  // namespace baton
