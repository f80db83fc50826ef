#include "bench/memory_bandwidth.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <vector>

namespace baton::bench {

MemoryBandwidth MeasureMemoryBandwidth(size_t buffer_bytes, int passes) {
  const size_t n = buffer_bytes / sizeof(float);
  std::vector<float> src(n, 1.0f), dst(n, 0.0f);  // touched: no page faults inside the timing
  MemoryBandwidth best;
  for (int pass = 0; pass < passes; ++pass) {
    auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel
    {
      const size_t threads = static_cast<size_t>(omp_get_num_threads());
      const size_t id = static_cast<size_t>(omp_get_thread_num());
      const size_t begin = n * id / threads, end = n * (id + 1) / threads;
      std::memcpy(dst.data() + begin, src.data() + begin, (end - begin) * sizeof(float));
    }
    auto t1 = std::chrono::steady_clock::now();
    const double bytes = static_cast<double>(n * sizeof(float));
    best.copy_gbs = std::max(best.copy_gbs, 2 * bytes / std::chrono::duration<double>(t1 - t0).count() / 1e9);
  }
  return best;
}

}  // namespace baton::bench
