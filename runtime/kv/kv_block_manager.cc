#include "runtime/kv/kv_block_manager.h"

#include <algorithm>
#include <string>

#include "runtime/kv/prefix_hash.h"

namespace baton {

KvBlockManager::KvBlockManager(int num_blocks, int block_size)
    : num_blocks_(num_blocks), block_size_(block_size), blocks_(static_cast<size_t>(std::max(num_blocks, 0))) {
  free_.reserve(blocks_.size());
  for (int b = num_blocks - 1; b >= 0; --b) free_.push_back(b);  // block 0 handed out first
}

double KvBlockManager::usage_ratio() const {
  return num_blocks_ > 0 ? static_cast<double>(num_used_blocks()) / num_blocks_ : 0.0;
}

// A never-cached block if there is one, else the least recently released
// cached block, which leaves the prefix cache.
int32_t KvBlockManager::TakeBlock() {
  int32_t id;
  if (!free_.empty()) {
    id = free_.back();
    free_.pop_back();
  } else {
    id = lru_.front();
    lru_.pop_front();
    Forget(id);
  }
  blocks_[id].refs = 1;
  return id;
}

void KvBlockManager::Forget(int32_t id) {
  Block& b = blocks_[id];
  if (b.indexed) index_.erase(b.hash);
  b.indexed = false;
  b.hashed = false;
  b.tokens.clear();
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
  for (int i = 0; i < need; ++i) table.push_back(TakeBlock());
  return Status::Ok();
}

// Released in reverse so that, of one sequence's cached blocks, the last
// ones are evicted first: a later block is useless without those before it.
void KvBlockManager::Release(BlockTable& table) {
  for (auto it = table.rbegin(); it != table.rend(); ++it) {
    Block& b = blocks_[*it];
    if (--b.refs > 0) continue;
    if (b.indexed) {
      b.lru = lru_.insert(lru_.end(), *it);
    } else {
      b.hashed = false;
      free_.push_back(*it);
    }
  }
  table.clear();
}

std::vector<int32_t> KvBlockManager::FindPrefix(std::span<const int32_t> tokens, int max_tokens, int* queried) const {
  const int limit = std::min(static_cast<int>(tokens.size()), max_tokens);
  const int whole = limit > 0 ? limit / block_size_ : 0;
  *queried = whole;
  std::vector<int32_t> found;
  uint64_t parent = kPrefixRootHash;
  for (int i = 0; i < whole; ++i) {
    auto span = tokens.subspan(static_cast<size_t>(i) * block_size_, static_cast<size_t>(block_size_));
    const uint64_t key = PrefixBlockHash(parent, span);
    auto it = index_.find(key);
    if (it == index_.end()) break;
    const Block& b = blocks_[it->second];
    if (b.parent != parent || !std::equal(span.begin(), span.end(), b.tokens.begin(), b.tokens.end())) break;
    found.push_back(it->second);
    parent = key;
  }
  return found;
}

KvBlockManager::PrefixProbe KvBlockManager::ProbePrefix(std::span<const int32_t> tokens, int max_tokens) const {
  int queried = 0;
  PrefixProbe probe;
  for (int32_t id : FindPrefix(tokens, max_tokens, &queried)) {
    probe.tokens += block_size_;
    if (blocks_[id].refs == 0) ++probe.unreferenced_blocks;
  }
  return probe;
}

int KvBlockManager::MatchPrefix(std::span<const int32_t> tokens, int max_tokens, BlockTable& table) {
  int queried = 0;
  const std::vector<int32_t> found = FindPrefix(tokens, max_tokens, &queried);
  prefix_queries_ += queried;
  prefix_hits_ += static_cast<int64_t>(found.size());
  for (int32_t id : found) {
    Block& b = blocks_[id];
    if (b.refs++ == 0) lru_.erase(b.lru);
    table.push_back(id);
  }
  return static_cast<int>(found.size()) * block_size_;
}

void KvBlockManager::PublishFullBlocks(const BlockTable& table, std::span<const int32_t> tokens) {
  const size_t full = std::min(table.size(), tokens.size() / static_cast<size_t>(block_size_));
  uint64_t parent = kPrefixRootHash;
  for (size_t i = 0; i < full; ++i) {
    Block& b = blocks_[table[i]];
    if (!b.hashed) {
      auto span = tokens.subspan(i * block_size_, static_cast<size_t>(block_size_));
      b.hash = PrefixBlockHash(parent, span);
      b.hashed = true;
      if (index_.emplace(b.hash, table[i]).second) {
        b.indexed = true;
        b.parent = parent;
        b.tokens.assign(span.begin(), span.end());
      }
    }
    parent = b.hash;
  }
}

void KvBlockManager::ClearPrefixCache() {
  for (int32_t id : lru_) {
    Forget(id);
    free_.push_back(id);
  }
  lru_.clear();
}

}  // namespace baton
