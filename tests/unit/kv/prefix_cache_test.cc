// Prefix caching in KvBlockManager: full blocks are found by their whole
// prefix, shared by reference count, kept after release until the free
// blocks run out, and evicted least recently released first.
#include <gtest/gtest.h>

#include <numeric>
#include <set>

#include "runtime/kv/kv_block_manager.h"
#include "runtime/kv/prefix_hash.h"

namespace baton {
namespace {

std::vector<int32_t> Iota(int n, int32_t first = 100) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), first);
  return v;
}

// A sequence that computed `tokens`: blocks reserved and published.
BlockTable Computed(KvBlockManager& m, const std::vector<int32_t>& tokens) {
  BlockTable t;
  EXPECT_TRUE(m.Reserve(t, static_cast<int>(tokens.size())).ok());
  m.PublishFullBlocks(t, tokens);
  return t;
}

TEST(PrefixBlockHash, DependsOnTheWholePrefixAndTokenOrder) {
  const std::vector<int32_t> a = {1, 2, 3, 4}, b = {1, 2, 4, 3};
  EXPECT_NE(PrefixBlockHash(kPrefixRootHash, a), PrefixBlockHash(kPrefixRootHash, b));
  EXPECT_EQ(PrefixBlockHash(kPrefixRootHash, a), PrefixBlockHash(kPrefixRootHash, a));
  const uint64_t p1 = PrefixBlockHash(kPrefixRootHash, a), p2 = PrefixBlockHash(kPrefixRootHash, b);
  EXPECT_NE(PrefixBlockHash(p1, a), PrefixBlockHash(p2, a));
}

TEST(PrefixCache, FindsWholePublishedBlocksUpToTheCapAndSharesThem) {
  KvBlockManager m(16, 4);
  const auto tokens = Iota(10);  // blocks [0,4) [4,8) full, [8,10) partial
  BlockTable a = Computed(m, tokens);
  EXPECT_EQ(m.num_cached_blocks(), 2);  // the partial block is not published

  BlockTable b;
  EXPECT_EQ(m.MatchPrefix(tokens, 9, b), 8);
  EXPECT_EQ(b, BlockTable(a.begin(), a.begin() + 2));
  EXPECT_EQ(m.prefix_queries(), 2);
  EXPECT_EQ(m.prefix_hits(), 2);
  EXPECT_EQ(m.num_used_blocks(), 3);  // shared, not copied

  // Capped so that one token is left to compute: 8 tokens -> one block.
  BlockTable c;
  EXPECT_EQ(m.MatchPrefix(std::span(tokens).first(8), 7, c), 4);
  EXPECT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0], a[0]);
  EXPECT_EQ(m.prefix_queries(), 3);
  EXPECT_EQ(m.prefix_hits(), 3);

  // Releasing one holder keeps the block for the others.
  m.Release(a);
  EXPECT_EQ(m.num_used_blocks(), 2);
  EXPECT_EQ(m.usage_ratio(), 2.0 / 16);
  m.Release(b);
  m.Release(c);
  EXPECT_EQ(m.num_used_blocks(), 0);
  EXPECT_EQ(m.usage_ratio(), 0.0);
  EXPECT_EQ(m.num_free_blocks(), 16);
  EXPECT_EQ(m.num_cached_blocks(), 2);  // still findable
  BlockTable d;
  EXPECT_EQ(m.MatchPrefix(tokens, 9, d), 8);
  m.Release(d);
}

TEST(PrefixCache, ABlockMatchesOnlyAfterTheSamePrefix) {
  KvBlockManager m(16, 4);
  auto first = Iota(8);
  BlockTable a = Computed(m, first);
  // Same second block, different first block: nothing matches.
  auto other = first;
  other[1] = 7;
  BlockTable b;
  EXPECT_EQ(m.MatchPrefix(other, 100, b), 0);
  EXPECT_TRUE(b.empty());
  // Same first block, different second: only the first matches.
  other = first;
  other[6] = 7;
  EXPECT_EQ(m.MatchPrefix(other, 100, b), 4);
  EXPECT_EQ(m.prefix_queries(), 4);
  EXPECT_EQ(m.prefix_hits(), 1);
  m.Release(a);
  m.Release(b);
}

TEST(PrefixCache, UnreferencedCachedBlocksAreEvictedOnlyWhenFreeBlocksRunOut) {
  KvBlockManager m(4, 2);
  const auto x = Iota(4, 10), y = Iota(4, 20);
  BlockTable a = Computed(m, x);
  m.Release(a);
  BlockTable b = Computed(m, y);
  m.Release(b);
  EXPECT_EQ(m.num_cached_blocks(), 4);
  EXPECT_EQ(m.num_free_blocks(), 4);

  // One block needed: the least recently released goes, which is x's last
  // block (a table is released back to front).
  BlockTable c;
  ASSERT_TRUE(m.Reserve(c, 1).ok());
  EXPECT_EQ(m.num_cached_blocks(), 3);
  BlockTable hit;
  EXPECT_EQ(m.MatchPrefix(x, 100, hit), 2);  // x's first block survived
  m.Release(hit);
  EXPECT_EQ(m.MatchPrefix(y, 100, hit), 4);  // y untouched
  m.Release(hit);

  // Using the whole pool evicts everything; nothing is handed out twice.
  BlockTable d;
  ASSERT_TRUE(m.Reserve(d, 6).ok());
  EXPECT_EQ(m.num_cached_blocks(), 0);
  std::set<int32_t> ids(c.begin(), c.end());
  ids.insert(d.begin(), d.end());
  EXPECT_EQ(ids.size(), 4u);
  EXPECT_FALSE(m.Reserve(d, 8).ok());
  EXPECT_EQ(m.MatchPrefix(y, 100, hit), 0);
  m.Release(c);
  m.Release(d);
  EXPECT_EQ(m.num_free_blocks(), 4);
}

TEST(PrefixCache, ADuplicateStaysPrivateAndIsFreedOnRelease) {
  KvBlockManager m(8, 2);
  const auto x = Iota(4);
  BlockTable a = Computed(m, x);
  BlockTable b = Computed(m, x);  // computed again (both in flight at once)
  EXPECT_EQ(m.num_cached_blocks(), 2);
  m.Release(b);
  EXPECT_EQ(m.num_cached_blocks(), 2);
  BlockTable hit;
  EXPECT_EQ(m.MatchPrefix(x, 100, hit), 4);
  EXPECT_EQ(hit, a);
  m.Release(hit);
  m.Release(a);
  m.ClearPrefixCache();
  EXPECT_EQ(m.num_cached_blocks(), 0);
  EXPECT_EQ(m.num_free_blocks(), 8);
  EXPECT_EQ(m.MatchPrefix(x, 100, hit), 0);
}

TEST(PrefixCache, ProbeSaysWhatWouldMatchWithoutTakingOrCounting) {
  KvBlockManager m(8, 2);
  const auto x = Iota(6);
  BlockTable a = Computed(m, x);  // 3 blocks, referenced
  m.Release(a);                   // now all 3 unreferenced, cached
  BlockTable held;
  EXPECT_EQ(m.MatchPrefix(x, 2, held), 2);  // hold the first block
  const int64_t queries = m.prefix_queries();
  const auto probe = m.ProbePrefix(x, 5);  // 2 whole blocks within 5 tokens
  EXPECT_EQ(probe.tokens, 4);
  EXPECT_EQ(probe.unreferenced_blocks, 1);  // the second; the first is held
  EXPECT_EQ(m.prefix_queries(), queries);
  EXPECT_EQ(m.num_used_blocks(), 1);
  m.Release(held);
}

TEST(PrefixCache, PublishingIsIdempotentAndFollowsGrowth) {
  KvBlockManager m(8, 2);
  auto x = Iota(3);
  BlockTable a;
  ASSERT_TRUE(m.Reserve(a, 3).ok());
  m.PublishFullBlocks(a, x);
  m.PublishFullBlocks(a, x);
  EXPECT_EQ(m.num_cached_blocks(), 1);
  x.push_back(7);  // the sequence grew: its second block is now full
  m.PublishFullBlocks(a, x);
  EXPECT_EQ(m.num_cached_blocks(), 2);
  BlockTable hit;
  EXPECT_EQ(m.MatchPrefix(x, 100, hit), 4);
  m.Release(hit);
  m.Release(a);
}

}  // namespace
}  // namespace baton
