// Host memory bandwidth, measured the way the decode floor needs it: large
// buffers (far beyond the caches), all threads, best of several passes.
#pragma once

#include <cstddef>

namespace baton::bench {

struct MemoryBandwidth {
  double copy_gbs = 0;  // (bytes read + bytes written) / s of a memcpy
};

MemoryBandwidth MeasureMemoryBandwidth(size_t buffer_bytes, int passes);

}  // namespace baton::bench
