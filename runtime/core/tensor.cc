#include "runtime/core/tensor.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace baton {

const char* DeviceName(Device d) { return d == Device::kCpu ? "cpu" : "cuda"; }

int64_t NumElements(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

std::string ShapeToString(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(s[i]);
  }
  return out + "]";
}

void* AllocateHostMemory(size_t bytes) {
  constexpr size_t kHugePage = size_t{2} << 20;
  const size_t size = std::max<size_t>(64, (bytes + 63) / 64 * 64);
  // Only the start moves to a 2 MiB boundary; the size is not rounded up, so
  // the partial last 2 MiB stays on small pages and nothing resident is wasted.
  const size_t align = bytes >= kHugePage ? kHugePage : 64;
  void* p = nullptr;
  if (posix_memalign(&p, align, size) != 0) return nullptr;
  if (align == kHugePage) (void)madvise(p, size, MADV_HUGEPAGE);  // a hint: a refusal is fine
  return p;
}

Tensor Tensor::Empty(const Shape& shape, DType dtype) {
  Tensor t;
  t.shape_ = shape;
  t.dtype_ = dtype;
  const size_t bytes = DTypeBytes(dtype, static_cast<size_t>(NumElements(shape)));
  void* p = AllocateHostMemory(bytes);
  if (p == nullptr) {
    std::fprintf(stderr, "baton: fatal: out of host memory allocating %zu bytes for %s\n", bytes,
                 ShapeToString(shape).c_str());
    std::abort();
  }
  t.owner_ = std::shared_ptr<void>(p, std::free);
  t.data_ = p;
  return t;
}

Tensor Tensor::Zeros(const Shape& shape, DType dtype) {
  Tensor t = Empty(shape, dtype);
  std::memset(t.data_, 0, t.nbytes());
  return t;
}

Tensor Tensor::View(std::shared_ptr<void> owner, void* data, const Shape& shape, DType dtype, Device device) {
  Tensor t;
  t.owner_ = std::move(owner);
  t.data_ = data;
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.device_ = device;
  return t;
}

Tensor Tensor::Reshape(const Shape& shape) const {
  if (NumElements(shape) != numel()) {
    std::fprintf(stderr, "baton: fatal: reshape %s -> %s changes the element count\n", ShapeToString(shape_).c_str(),
                 ShapeToString(shape).c_str());
    std::abort();
  }
  Tensor t = *this;
  t.shape_ = shape;
  return t;
}

Tensor Tensor::Rows(int64_t begin, int64_t end) const {
  if (ndim() == 0 || begin < 0 || end < begin || end > shape_[0]) {
    std::fprintf(stderr, "baton: fatal: rows [%lld, %lld) of %s\n", static_cast<long long>(begin),
                 static_cast<long long>(end), ShapeToString(shape_).c_str());
    std::abort();
  }
  int64_t row = numel() / (shape_[0] == 0 ? 1 : shape_[0]);
  Tensor t = *this;
  t.shape_[0] = end - begin;
  t.data_ = static_cast<char*>(data_) + DTypeBytes(dtype_, static_cast<size_t>(begin * row));
  return t;
}

Tensor Tensor::Clone() const {
  Tensor t = Empty(shape_, dtype_);
  if (nbytes()) std::memcpy(t.data_, data_, nbytes());
  return t;
}

Tensor Tensor::ToF32() const {
  if (!IsFloatDType(dtype_)) DieOnDTypeMismatch(dtype_, "a float type");
  Tensor t = Empty(shape_, DType::kF32);
  ConvertToF32(data_, dtype_, static_cast<size_t>(numel()), t.data<float>());
  return t;
}

Tensor Tensor::ToDType(DType dtype) const {
  if (dtype_ != DType::kF32) DieOnDTypeMismatch(dtype_, "F32");
  Tensor t = Empty(shape_, dtype);
  ConvertFromF32(static_cast<const float*>(data_), static_cast<size_t>(numel()), dtype, t.data_);
  return t;
}

std::string Tensor::DebugString() const {
  return std::string(DTypeName(dtype_)) + ShapeToString(shape_) + " " + DeviceName(device_);
}

void DieOnDTypeMismatch(DType have, const char* want) {
  std::fprintf(stderr, "baton: fatal: tensor has dtype %s, code expected %s\n", DTypeName(have), want);
  std::abort();
}

}  // namespace baton
