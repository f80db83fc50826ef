// CpuBackend::AllocateResident: the KV cache's pools are zeroed and in
// memory before the first step writes them, so no step pays for faulting
// their pages in.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <vector>

#include "runtime/backend/cpu/cpu_backend.h"

namespace baton {
namespace {

// How many of the pages under [p, p + bytes) are resident (mincore).
size_t ResidentPages(const void* p, size_t bytes, size_t* total) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = reinterpret_cast<uintptr_t>(p) / page * page;
  const uintptr_t end = reinterpret_cast<uintptr_t>(p) + bytes;
  const size_t pages = (end - begin + page - 1) / page;
  std::vector<unsigned char> in_core(pages);
  EXPECT_EQ(mincore(reinterpret_cast<void*>(begin), end - begin, in_core.data()), 0);
  *total = pages;
  size_t resident = 0;
  for (unsigned char c : in_core) resident += c & 1;
  return resident;
}

TEST(CpuAllocateResident, ReturnsZeroedMemoryWhosePagesAreAllResident) {
  CpuBackend backend(1);
  // 24 MiB, past the 2 MiB at which host tensors ask for huge pages.
  Tensor pool = backend.AllocateResident({96, 16, 64, 64}, DType::kF32);
  ASSERT_EQ(pool.nbytes(), size_t{24} << 20);
  size_t total = 0;
  const size_t resident = ResidentPages(pool.raw(), pool.nbytes(), &total);
  EXPECT_EQ(resident, total);
  const float* f = pool.data<float>();
  for (int64_t i = 0; i < pool.numel(); i += 997) ASSERT_EQ(f[i], 0.0f) << "at " << i;
  EXPECT_EQ(f[pool.numel() - 1], 0.0f);
}

TEST(CpuAllocateResident, PlainAllocateLeavesFreshPagesOut) {
  // The contrast that makes the test above mean something: a fresh 24 MiB
  // Allocate is not yet in memory. (The allocator maps blocks this large
  // afresh, so none of it was touched before.)
  CpuBackend backend(1);
  Tensor pool = backend.Allocate({96, 16, 64, 64}, DType::kF32);
  size_t total = 0;
  const size_t resident = ResidentPages(pool.raw(), pool.nbytes(), &total);
  EXPECT_LT(resident, total / 2);
}

}  // namespace
}  // namespace baton
