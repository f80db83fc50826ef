// Tensor: a typed, shaped, contiguous (row-major) view of memory on a device.
//
// A Tensor shares ownership of its storage: an aligned host allocation, an
// mmap'ed checkpoint region, or device memory. Copies are shallow (like
// torch.Tensor); Clone() makes a deep host copy. Not thread-safe to mutate
// the same storage from two threads without synchronisation.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/core/dtype.h"

namespace baton {

enum class Device : uint8_t { kCpu, kCuda };
const char* DeviceName(Device d);

using Shape = std::vector<int64_t>;
int64_t NumElements(const Shape& s);
std::string ShapeToString(const Shape& s);  // "[2, 3]"

class Tensor {
 public:
  Tensor() = default;

  // Uninitialised host tensor, 64-byte aligned.
  static Tensor Empty(const Shape& shape, DType dtype);
  static Tensor Zeros(const Shape& shape, DType dtype);
  // A non-owning view of `data`; `owner` keeps the memory alive (may be null
  // when the caller guarantees the lifetime).
  static Tensor View(std::shared_ptr<void> owner, void* data, const Shape& shape, DType dtype,
                     Device device = Device::kCpu);

  bool defined() const { return data_ != nullptr || NumElements(shape_) == 0; }
  const Shape& shape() const { return shape_; }
  int ndim() const { return static_cast<int>(shape_.size()); }
  int64_t dim(int i) const { return shape_[i < 0 ? i + ndim() : i]; }
  int64_t numel() const { return NumElements(shape_); }
  size_t nbytes() const { return DTypeBytes(dtype_, static_cast<size_t>(numel())); }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }

  void* raw() { return data_; }
  const void* raw() const { return data_; }
  // What keeps the storage alive (a backend may tag its own layouts by it).
  const std::shared_ptr<void>& owner() const { return owner_; }
  // Typed access; aborts if T does not match the dtype (a programming error).
  template <typename T>
  T* data();
  template <typename T>
  const T* data() const;

  // Same storage, new shape with the same number of elements.
  Tensor Reshape(const Shape& shape) const;
  // Rows [begin, end) along dimension 0, sharing storage.
  Tensor Rows(int64_t begin, int64_t end) const;
  // Deep copy on the host.
  Tensor Clone() const;
  // Host copy converted to float32 (from F32, F16 or BF16).
  Tensor ToF32() const;
  // Host copy converted from float32 to a float dtype.
  Tensor ToDType(DType dtype) const;

  std::string DebugString() const;  // "BF16[2, 3] cpu"

 private:
  std::shared_ptr<void> owner_;
  void* data_ = nullptr;
  Shape shape_;
  DType dtype_ = DType::kF32;
  Device device_ = Device::kCpu;
};

void DieOnDTypeMismatch(DType have, const char* want);

// Host memory for tensors, freed with std::free; null when there is none.
// 64-byte aligned; a block of 2 MiB or more starts on a 2 MiB boundary and
// asks the kernel for transparent huge pages (weights, KV caches): those are
// streamed whole every step, and 2 MiB pages take 512 times fewer TLB misses
// (+5-13 % on two CPU pipeline ranks).
void* AllocateHostMemory(size_t bytes);

template <typename T>
struct DTypeOf;
template <>
struct DTypeOf<float> {
  static constexpr DType value = DType::kF32;
};
template <>
struct DTypeOf<int32_t> {
  static constexpr DType value = DType::kI32;
};
template <>
struct DTypeOf<int8_t> {
  static constexpr DType value = DType::kI8;
};
template <>
struct DTypeOf<uint16_t> {
  static constexpr DType value = DType::kBF16;
};  // or F16

template <typename T>
T* Tensor::data() {
  constexpr DType want = DTypeOf<T>::value;
  bool ok = dtype_ == want || (want == DType::kBF16 && dtype_ == DType::kF16);
  if (!ok) DieOnDTypeMismatch(dtype_, DTypeName(want));
  return static_cast<T*>(data_);
}

template <typename T>
const T* Tensor::data() const {
  return const_cast<Tensor*>(this)->data<T>();
}

}  // namespace baton
