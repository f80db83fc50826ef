#include "runtime/kv/kv_block_manager.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

namespace baton {
namespace {

TEST(KvBlockManager, ReservesWholeBlocksAndGrowsTables) {
  KvBlockManager m(8, 16);
  BlockTable t;
  ASSERT_TRUE(m.Reserve(t, 1).ok());
  EXPECT_EQ(t.size(), 1u);
  ASSERT_TRUE(m.Reserve(t, 16).ok());
  EXPECT_EQ(t.size(), 1u);  // still fits the first block
  ASSERT_TRUE(m.Reserve(t, 17).ok());
  EXPECT_EQ(t.size(), 2u);
  EXPECT_EQ(m.num_free_blocks(), 6);
}

TEST(KvBlockManager, ExhaustionTakesNothingAndNamesTheNumbers) {
  KvBlockManager m(4, 16);
  BlockTable a, b;
  ASSERT_TRUE(m.Reserve(a, 40).ok());  // 3 blocks
  Status st = m.Reserve(b, 33);        // needs 3, 1 free
  EXPECT_EQ(st.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(st.message().find("1 of 4 free"), std::string::npos) << st.message();
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(m.num_free_blocks(), 1);
}

TEST(KvBlockManager, ReleasedBlocksAreReusedAndNeverShared) {
  KvBlockManager m(6, 4);
  BlockTable a, b, c;
  ASSERT_TRUE(m.Reserve(a, 12).ok());
  ASSERT_TRUE(m.Reserve(b, 12).ok());
  EXPECT_FALSE(m.Reserve(c, 1).ok());
  m.Release(a);
  EXPECT_TRUE(a.empty());
  ASSERT_TRUE(m.Reserve(c, 12).ok());
  std::set<int32_t> all(b.begin(), b.end());
  all.insert(c.begin(), c.end());
  EXPECT_EQ(all.size(), 6u);  // b and c share no block
  EXPECT_TRUE(std::all_of(all.begin(), all.end(), [](int32_t x) { return x >= 0 && x < 6; }));
}

}  // namespace
}  // namespace baton
