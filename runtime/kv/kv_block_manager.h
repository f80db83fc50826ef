// KvBlockManager: hands out the fixed-size blocks of the paged KV cache, and
// remembers full blocks so that a prompt starting like an earlier one skips
// their prefill (prefix caching).
//
// The cache of every layer is one pool of `num_blocks` blocks of
// `block_size` token slots; a sequence's tokens live in the blocks listed in
// its BlockTable, in order. Block ids are decided here, once, and are the
// same on every pipeline stage.
//
// Blocks are reference counted: a cached block may sit in several tables at
// once (sequences sharing a prefix). A full block whose K/V have been
// submitted for computing can be published under the key of its tokens and
// their whole prefix (PrefixBlockHash); MatchPrefix finds such blocks for a
// new prompt. When no table references a published block it stays findable
// in an LRU list and is only evicted when Reserve runs out of never-cached
// free blocks. Only whole blocks are shared, and a sequence only writes past
// the blocks it matched, so a shared block is never written again.
//
// Not thread-safe: owned by the scheduler.
#pragma once

#include <cstdint>
#include <list>
#include <span>
#include <unordered_map>
#include <vector>

#include "runtime/core/status.h"

namespace baton {

using BlockTable = std::vector<int32_t>;

class KvBlockManager {
 public:
  static constexpr int kDefaultBlockSize = 16;

  KvBlockManager(int num_blocks, int block_size);

  int num_blocks() const { return num_blocks_; }
  int block_size() const { return block_size_; }
  // Blocks Reserve can take: never referenced, or cached but referenced by
  // no table (these are evicted from the prefix cache when taken).
  int num_free_blocks() const { return static_cast<int>(free_.size() + lru_.size()); }
  // Blocks referenced by at least one table.
  int num_used_blocks() const { return num_blocks_ - num_free_blocks(); }
  // num_used_blocks() / num_blocks(): 0 when no sequence holds anything,
  // however many blocks the prefix cache keeps.
  double usage_ratio() const;
  // Published blocks (findable by MatchPrefix), referenced or not.
  int num_cached_blocks() const { return static_cast<int>(index_.size()); }
  int BlocksFor(int num_tokens) const { return (num_tokens + block_size_ - 1) / block_size_; }

  // Grows `table` so it can hold `num_tokens` tokens. All or nothing: when
  // the free blocks do not suffice, nothing is taken and the result is
  // ResourceExhausted with the numbers.
  Status Reserve(BlockTable& table, int num_tokens);
  // Drops the table's reference on each of its blocks and clears it.
  void Release(BlockTable& table);

  // Prefix cache. Appends to `table` (which must be empty) the published
  // blocks holding the longest prefix of `tokens` that is made of whole
  // blocks and at most `max_tokens` long, taking a reference on each.
  // Returns the number of tokens they hold. Counts one query per whole block
  // of that length and one hit per block found.
  int MatchPrefix(std::span<const int32_t> tokens, int max_tokens, BlockTable& table);
  // What MatchPrefix would find, without taking or counting anything: the
  // tokens, and how many of those blocks no table references (taking them
  // lowers num_free_blocks()).
  struct PrefixProbe {
    int tokens = 0;
    int unreferenced_blocks = 0;
  };
  PrefixProbe ProbePrefix(std::span<const int32_t> tokens, int max_tokens) const;
  // Publishes every full block of `table` not yet published: block i holds
  // tokens[i * block_size, (i + 1) * block_size). Call once the step that
  // writes them has been submitted (steps reach every stage in order, so a
  // later step reading them is safe). When another block already holds the
  // same prefix, this one stays private (and is freed as usual).
  void PublishFullBlocks(const BlockTable& table, std::span<const int32_t> tokens);
  // Forgets every cached block no table references (they become plain free
  // blocks); referenced ones stay findable.
  void ClearPrefixCache();

  int64_t prefix_queries() const { return prefix_queries_; }
  int64_t prefix_hits() const { return prefix_hits_; }
  void ResetPrefixStats() { prefix_queries_ = prefix_hits_ = 0; }

 private:
  struct Block {
    int refs = 0;
    bool hashed = false;   // `hash` is this block's key (it is full and written)
    bool indexed = false;  // index_[hash] is this block
    uint64_t hash = 0;
    uint64_t parent = 0;               // key of the block before it (when indexed)
    std::vector<int32_t> tokens;       // its tokens (when indexed): rules out hash collisions
    std::list<int32_t>::iterator lru;  // valid when indexed and refs == 0
  };

  // The published blocks holding the longest whole-block prefix of
  // `tokens` within max_tokens, in order; `queried` gets the whole blocks
  // looked up.
  std::vector<int32_t> FindPrefix(std::span<const int32_t> tokens, int max_tokens, int* queried) const;
  int32_t TakeBlock();
  void Forget(int32_t id);  // unpublishes a block

  int num_blocks_;
  int block_size_;
  std::vector<Block> blocks_;
  std::vector<int32_t> free_;                    // a stack: recently freed blocks are reused first (warm in cache)
  std::list<int32_t> lru_;                       // cached, unreferenced: front = least recently released
  std::unordered_map<uint64_t, int32_t> index_;  // key -> published block
  int64_t prefix_queries_ = 0;
  int64_t prefix_hits_ = 0;
};

}  // namespace baton
