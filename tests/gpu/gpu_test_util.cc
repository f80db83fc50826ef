#include "tests/gpu/gpu_test_util.h"

#include <cstdio>
#include <map>

#include "runtime/backend/cuda/device_info.h"
#include "runtime/backend/cuda/make_cuda_backend.h"

namespace baton::testing {

CudaBackend* GpuOrNull(DType dtype) {
  // Never destroyed: a backend torn down after the CUDA runtime's own exit
  // handler would call into an unloaded runtime.
  static auto* backends = new std::map<DType, std::unique_ptr<Backend>>();
  if (cuda::VisibleDeviceCount() == 0) return nullptr;
  auto it = backends->find(dtype);
  if (it == backends->end()) {
    StatusOr<std::unique_ptr<Backend>> b = MakeCudaBackend(dtype, 0);
    if (!b.ok()) {
      ADD_FAILURE() << "a GPU is visible but MakeCudaBackend failed: " << b.status().ToString();
      return nullptr;
    }
    it = backends->emplace(dtype, std::move(b).value()).first;
  }
  return static_cast<CudaBackend*>(it->second.get());
}

CpuBackend& Cpu() {
  static CpuBackend cpu;
  return cpu;
}

Tensor RandomHost(std::mt19937& rng, const Shape& shape, DType dtype, float lo, float hi) {
  std::uniform_real_distribution<float> dist(lo, hi);
  Tensor t = Tensor::Empty(shape, DType::kF32);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = dist(rng);
  return dtype == DType::kF32 ? t : t.ToDType(dtype).ToF32();
}

Tensor HostI32(const std::vector<int32_t>& values, const Shape& shape) {
  Tensor t = Tensor::Empty(shape, DType::kI32);
  for (size_t i = 0; i < values.size(); ++i) t.data<int32_t>()[i] = values[i];
  return t;
}

Tensor Poisoned(CudaBackend& gpu, const Shape& shape, DType dtype) {
  Tensor nan = Tensor::Empty(shape, DType::kF32);
  for (int64_t i = 0; i < nan.numel(); ++i) nan.data<float>()[i] = std::nanf("");
  return gpu.Upload(nan, dtype);
}

std::string ErrorReport::ToString() const {
  char buf[160];
  std::snprintf(buf, sizeof(buf), "rel_err=%.3e non_finite=%lld nan_mismatch=%lld", rel,
                static_cast<long long>(non_finite), static_cast<long long>(mismatched_nan));
  return buf;
}

ErrorReport Compare(const Tensor& out, const Tensor& ref) {
  ErrorReport r;
  EXPECT_EQ(out.shape(), ref.shape());
  if (out.shape() != ref.shape()) {
    r.rel = INFINITY;
    return r;
  }
  double diff = 0, norm = 0;
  const float* o = out.data<float>();
  const float* e = ref.data<float>();
  for (int64_t i = 0; i < out.numel(); ++i) {
    if (std::isnan(e[i]) || std::isnan(o[i])) {
      if (std::isnan(e[i]) != std::isnan(o[i])) ++r.mismatched_nan;
      if (!std::isnan(e[i])) ++r.non_finite;
      continue;
    }
    if (!std::isfinite(o[i])) {
      ++r.non_finite;
      continue;
    }
    diff += (static_cast<double>(o[i]) - e[i]) * (static_cast<double>(o[i]) - e[i]);
    norm += static_cast<double>(e[i]) * e[i];
  }
  r.rel = norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
  return r;
}

double Tolerance(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return 2e-5;
    case DType::kF16:
      return 1e-3;
    default:
      return 5e-3;
  }
}

}  // namespace baton::testing
