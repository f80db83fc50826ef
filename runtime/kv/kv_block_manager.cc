#include "runtime/kv/kv_block_manager.h"

#include <string>

namespace baton {

KvBlockManager::KvBlockManager(int num_blocks, int block_size) : num_blocks_(num_blocks), block_size_(block_size) {
  free_.reserve(num_blocks);
  for (int b = num_blocks - 1; b >= 0; --b) free_.push_back(b);  // block 0 handed out first
}

Status KvBlockManager::Reserve(BlockTable& table, int num_tokens) {
  const int need = BlocksFor(num_tokens) - static_cast<int>(table.size());
  if (need <= 0) return Status::Ok();
  if (need > num_free_blocks()) {
    return Status::ResourceExhausted("KV cache full: " + std::to_string(num_tokens) + " tokens need " +
                                     std::to_string(need) + " more blocks of " + std::to_string(block_size_) + ", " +
                                     std::to_string(num_free_blocks()) + " of " + std::to_string(num_blocks_) +
                                     " free");
  }
  for (int i = 0; i < need; ++i) {
    table.push_back(free_.back());
    free_.pop_back();
  }
  return Status::Ok();
}

void KvBlockManager::Release(BlockTable& table) {
  for (auto it = table.rbegin(); it != table.rend(); ++it) free_.push_back(*it);
  table.clear();
}

}  // namespace baton
