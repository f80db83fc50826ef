// PrefixBlockHash: the key of a full KV block in the prefix cache.
//
// A block's K/V depend on every token before it, not only its own, so the
// key chains: hash(parent block's key, this block's tokens). Two blocks have
// the same key only if their whole prefixes are the same (up to 64-bit
// collisions, which KvBlockManager rules out by also comparing tokens).
#pragma once

#include <cstdint>
#include <span>

namespace baton {

// The parent key of a sequence's first block.
inline constexpr uint64_t kPrefixRootHash = 0x9e3779b97f4a7c15ull;

uint64_t PrefixBlockHash(uint64_t parent, std::span<const int32_t> tokens);

}  // namespace baton
