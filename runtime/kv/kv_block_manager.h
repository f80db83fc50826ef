// KvBlockManager: hands out the fixed-size blocks of the paged KV cache.
//
// The cache of every layer is one pool of `num_blocks` blocks of
// `block_size` token slots; a sequence's tokens live in the blocks listed in
// its BlockTable, in order. Block ids are decided here, once, and are the
// same on every pipeline stage. Not thread-safe: owned by the scheduler.
#pragma once

#include <cstdint>
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
  int num_free_blocks() const { return static_cast<int>(free_.size()); }
  int BlocksFor(int num_tokens) const { return (num_tokens + block_size_ - 1) / block_size_; }

  // Grows `table` so it can hold `num_tokens` tokens. All or nothing: when
  // the free blocks do not suffice, nothing is taken and the result is
  // ResourceExhausted with the numbers.
  Status Reserve(BlockTable& table, int num_tokens);
  // Returns every block of `table` to the pool and clears it.
  void Release(BlockTable& table);

 private:
  int num_blocks_;
  int block_size_;
  std::vector<int32_t> free_;  // a stack: recently freed blocks are reused first (warm in cache)
};

}  // namespace baton
