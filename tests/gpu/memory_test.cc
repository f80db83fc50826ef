// Allocation, upload/download and the factory's answers.
#include <gtest/gtest.h>

#include <cstring>

#include "runtime/backend/cuda/device_info.h"
#include "runtime/backend/cuda/make_cuda_backend.h"
#include "tests/gpu/gpu_test_util.h"

namespace baton::testing {
namespace {

TEST(CudaFactory, UnavailableWithoutGpuElseWorks) {
  StatusOr<std::unique_ptr<Backend>> b = MakeCudaBackend(DType::kBF16, 0);
  if (cuda::VisibleDeviceCount() == 0) {
    ASSERT_FALSE(b.ok());
    EXPECT_EQ(b.status().code(), StatusCode::kUnavailable) << b.status().ToString();
    return;
  }
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ((*b)->device(), Device::kCuda);
  EXPECT_EQ((*b)->compute_dtype(), DType::kBF16);
}

TEST(CudaFactory, RejectsBadDeviceAndDType) {
  if (cuda::VisibleDeviceCount() == 0) GTEST_SKIP() << "no CUDA GPU visible";
  StatusOr<std::unique_ptr<Backend>> bad_device = MakeCudaBackend(DType::kF32, 1000);
  ASSERT_FALSE(bad_device.ok());
  EXPECT_EQ(bad_device.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad_device.status().message().find("1000"), std::string::npos);
  StatusOr<std::unique_ptr<Backend>> bad_dtype = MakeCudaBackend(DType::kI32, 0);
  ASSERT_FALSE(bad_dtype.ok());
  EXPECT_EQ(bad_dtype.status().code(), StatusCode::kInvalidArgument);
}

TEST(CudaMemory, OutOfMemoryIsResourceExhaustedWithSizes) {
  BATON_GPU_OR_SKIP(gpu, DType::kF32);
  const int64_t huge = int64_t{1} << 48;  // 1 PiB of floats: no card has it
  StatusOr<Tensor> t = gpu->TryAllocate({huge}, DType::kF32);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kResourceExhausted) << t.status().ToString();
  EXPECT_NE(t.status().message().find(std::to_string(huge * 4)), std::string::npos) << t.status().ToString();
  EXPECT_NE(t.status().message().find("free"), std::string::npos) << t.status().ToString();
  // The device is still usable afterwards.
  StatusOr<Tensor> small = gpu->TryAllocate({1024}, DType::kF32);
  ASSERT_TRUE(small.ok()) << small.status().ToString();
  EXPECT_TRUE(gpu->Synchronize().ok());
}

TEST(CudaMemory, FreedBlocksAreReused) {
  BATON_GPU_OR_SKIP(gpu, DType::kF32);
  void* first = nullptr;
  {
    Tensor t = gpu->Allocate({1000, 1000}, DType::kF32);
    first = t.raw();
    EXPECT_EQ(t.device(), Device::kCuda);
  }
  const size_t cached = gpu->allocator().bytes_cached();
  EXPECT_GE(cached, 4000000u);
  Tensor again = gpu->Allocate({999, 1001}, DType::kF32);  // same size class
  EXPECT_EQ(again.raw(), first);
  EXPECT_EQ(gpu->allocator().bytes_cached(), cached - cuda::DeviceAllocator::RoundSize(4000000));
}

TEST(CudaMemory, SizeClassesWasteAtMostAnEighthOr512Bytes) {
  for (size_t n : {1u, 511u, 512u, 513u, 4097u, 1000000u, 123456789u}) {
    const size_t r = cuda::DeviceAllocator::RoundSize(n);
    EXPECT_GE(r, n);
    EXPECT_LT(r - n, std::max<size_t>(512, n / 8 + 1)) << n;
    EXPECT_EQ(r % 512, 0u) << n;
  }
}

class CudaUpload : public ::testing::TestWithParam<DType> {};

// Every float converts on the device exactly as Baton's host conversion
// does (round to nearest even, NaN kept, overflow to inf for F16).
TEST_P(CudaUpload, RoundTripMatchesHostConversionBitExactly) {
  const DType dtype = GetParam();
  BATON_GPU_OR_SKIP(gpu, dtype);
  std::mt19937 rng(7);
  Tensor host = RandomHost(rng, {257, 33}, DType::kF32, -3.0f, 3.0f);
  float* p = host.data<float>();
  const float specials[] = {0.0f,      -0.0f,    1e-30f,        -1e-30f,     1e-6f,       65504.0f, 70000.0f, 3e38f,
                            -INFINITY, INFINITY, std::nanf(""), 1.00390625f, 1.01171875f, 6.1e-5f,  3.0e-8f};
  for (size_t i = 0; i < sizeof(specials) / sizeof(float); ++i) p[i] = specials[i];
  Tensor dev = gpu->Upload(host, dtype);
  EXPECT_EQ(dev.dtype(), dtype);
  EXPECT_EQ(dev.device(), Device::kCuda);
  Tensor back = gpu->ToHostF32(dev);
  Tensor expect = dtype == DType::kF32 ? host : host.ToDType(dtype).ToF32();
  ASSERT_EQ(back.shape(), expect.shape());
  int64_t differ = 0;
  for (int64_t i = 0; i < back.numel(); ++i) {
    const float a = back.data<float>()[i], b = expect.data<float>()[i];
    if (std::isnan(a) && std::isnan(b)) continue;
    if (std::memcmp(&a, &b, 4) != 0) ++differ;
  }
  EXPECT_EQ(differ, 0);
  // Uploading 16-bit host data into another float type converts too.
  if (dtype != DType::kF32) {
    Tensor as_f32 = gpu->Upload(host.ToDType(dtype), DType::kF32);
    Tensor back32 = gpu->ToHostF32(as_f32);
    for (int64_t i = 0; i < back32.numel(); ++i) {
      const float a = back32.data<float>()[i], b = expect.data<float>()[i];
      if (!(std::isnan(a) && std::isnan(b))) {
        ASSERT_EQ(std::memcmp(&a, &b, 4), 0) << i;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllFloat, CudaUpload, ::testing::ValuesIn(TestedDTypes()), DTypeParamName);

TEST(CudaUploadI32, CopiesIntegersUnchanged) {
  BATON_GPU_OR_SKIP(gpu, DType::kF32);
  // Round trip through GatherRows' ids: an I32 tensor on the device picks
  // exactly the rows it names.
  Tensor ids = gpu->Upload(HostI32({3, 0, 2, 2}, {4}), DType::kI32);
  EXPECT_EQ(ids.dtype(), DType::kI32);
  std::mt19937 rng(3);
  Tensor x = RandomHost(rng, {4, 5}, DType::kF32);
  Tensor out = Poisoned(*gpu, {4, 5}, DType::kF32);
  gpu->GatherRows(gpu->Upload(x, DType::kF32), ids, out);
  Tensor got = gpu->ToHostF32(out);
  const int rows[] = {3, 0, 2, 2};
  for (int r = 0; r < 4; ++r) {
    for (int c = 0; c < 5; ++c) EXPECT_EQ(got.data<float>()[r * 5 + c], x.data<float>()[rows[r] * 5 + c]);
  }
}

}  // namespace
}  // namespace baton::testing
