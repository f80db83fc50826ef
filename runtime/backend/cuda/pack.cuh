// Packs of adjacent elements moved with one 16-byte load or store (8 bf16
// or f16, 4 f32). Elementwise kernels that move 2 bytes a thread at a time
// are bound by instruction issue, well below the memory bandwidth; with
// packs the same kernels run at copy speed. A kernel takes the pack width W
// as a template argument and its launcher picks W with PackWidthFor: the
// full width when every pointer is 16-byte aligned and the row length is a
// multiple of it, else 1 (the scalar path, same arithmetic).
#pragma once

#include <cstdint>
#include <initializer_list>

#include "runtime/backend/cuda/common.cuh"

namespace baton::cuda {

template <typename T, int W>
struct alignas(sizeof(T) * W) Pack {
  T v[W];
};

template <int W, typename T>
__device__ __forceinline__ Pack<T, W> LoadPack(const T* p) {
  return *reinterpret_cast<const Pack<T, W>*>(p);
}

template <int W, typename T>
__device__ __forceinline__ void StorePack(T* p, const Pack<T, W>& x) {
  *reinterpret_cast<Pack<T, W>*>(p) = x;
}

template <typename T>
constexpr int kFullPack = 16 / static_cast<int>(sizeof(T));

// kFullPack<T> when `row_length` divides by it and every pointer is 16-byte
// aligned (so every row start is too), else 1.
template <typename T>
inline int PackWidthFor(int64_t row_length, std::initializer_list<const void*> pointers) {
  if (row_length % kFullPack<T> != 0) return 1;
  for (const void* p : pointers) {
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) return 1;
  }
  return kFullPack<T>;
}

}  // namespace baton::cuda

// Runs BODY with the constexpr int `W` bound to `width`, which must be 1 or
// kFullPack<T> (from PackWidthFor<T>).
#define BATON_DISPATCH_PACK(T, width, ...)               \
  if ((width) == ::baton::cuda::kFullPack<T>) {           \
    constexpr int W = ::baton::cuda::kFullPack<T>;        \
    __VA_ARGS__;                                          \
  } else {                                                \
    constexpr int W = 1;                                  \
    __VA_ARGS__;                                          \
  }
