#include "runtime/kv/paged_kv_cache.h"

namespace baton {

PagedKvCache::PagedKvCache(Backend& backend, const KvCacheShape& shape) : shape_(shape) {
  const Shape pool = {shape.num_blocks, shape.block_size, shape.num_kv_heads, shape.head_dim};
  for (int l = 0; l < shape.num_layers; ++l) {
    k_.push_back(backend.AllocateResident(pool, backend.compute_dtype()));
    v_.push_back(backend.AllocateResident(pool, backend.compute_dtype()));
  }
}

size_t PagedKvCache::bytes() const {
  size_t total = 0;
  for (size_t l = 0; l < k_.size(); ++l) total += k_[l].nbytes() + v_[l].nbytes();
  return total;
}

}  // namespace baton
