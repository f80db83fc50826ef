// PagedKvCache: the K and V block pools of the layers one stage owns.
// Layer l's pools are [num_blocks, block_size, num_kv_heads, head_dim] on the
// backend's device; which blocks a sequence uses is the KvBlockManager's
// business, not this class's.
#pragma once

#include <vector>

#include "runtime/backend/backend.h"

namespace baton {

struct KvCacheShape {
  int num_layers = 0;
  int num_blocks = 0;
  int block_size = 16;
  int num_kv_heads = 0;
  int head_dim = 0;

  // Bytes of K and V for one token of one layer.
  size_t BytesPerTokenPerLayer(DType dtype) const {
    return 2 * DTypeBytes(dtype, static_cast<size_t>(num_kv_heads) * head_dim);
  }
};

class PagedKvCache {
 public:
  PagedKvCache() = default;
  PagedKvCache(Backend& backend, const KvCacheShape& shape);

  const KvCacheShape& shape() const { return shape_; }
  Tensor& k(int layer) { return k_[layer]; }
  Tensor& v(int layer) { return v_[layer]; }
  size_t bytes() const;

 private:
  KvCacheShape shape_;
  std::vector<Tensor> k_, v_;
};

}  // namespace baton
