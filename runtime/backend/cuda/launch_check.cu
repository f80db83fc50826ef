// The abort path shared by every op (see common.cuh), and the chained
// launch switch (chained_launch.cuh).
#include <atomic>

#include "runtime/backend/cuda/chained_launch.cuh"
#include "runtime/backend/cuda/common.cuh"

namespace baton::cuda {

void DieCuda(const char* op, const char* what) {
  std::fprintf(stderr, "baton: fatal: cuda %s: %s\n", op, what);
  std::abort();
}

void CheckLaunch(const char* op) {
  const cudaError_t err = cudaGetLastError();
  if (err == cudaSuccess) return;
  std::fprintf(stderr, "baton: fatal: cuda %s: kernel launch failed: %s (%s)\n", op, cudaGetErrorName(err),
               cudaGetErrorString(err));
  std::abort();
}

namespace {
std::atomic<bool> chained_launch{false};
}  // namespace

void SetChainedLaunch(bool on) { chained_launch.store(on, std::memory_order_relaxed); }
bool ChainedLaunch() { return chained_launch.load(std::memory_order_relaxed); }

}  // namespace baton::cuda
