#include "runtime/kv/prefix_hash.h"

namespace baton {
namespace {

// The splitmix64 finalizer: every input bit affects every output bit, so
// blocks that differ in one token (or in order) get unrelated keys.
uint64_t Mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

}  // namespace

uint64_t PrefixBlockHash(uint64_t parent, std::span<const int32_t> tokens) {
  uint64_t h = Mix(parent ^ (0x632be59bd9b4e019ull + tokens.size()));
  for (int32_t t : tokens) h = Mix(h ^ static_cast<uint32_t>(t));
  return h;
}

}  // namespace baton
