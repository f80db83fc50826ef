// ElementType and ReduceOp: what a collective moves and how it combines.
//
// Collectives take a pointer, an element count and an ElementType rather
// than a Tensor so that the same interface serves host memory (MPI) and
// device memory (NCCL, which has its own ncclDataType_t for each of these).
// DType lacks float64, which reductions of losses and norms want, so this
// is a separate enum; ElementTypeOf maps a tensor's DType onto it.
#pragma once

#include <cstddef>
#include <cstdint>

#include "runtime/core/dtype.h"
#include "runtime/core/status.h"

namespace baton {

enum class ElementType : uint8_t {
  kUInt8,
  kInt8,
  kInt32,
  kInt64,
  kFloat16,
  kBFloat16,
  kFloat32,
  kFloat64,
};

enum class ReduceOp : uint8_t { kSum, kMax, kMin };

size_t ElementSize(ElementType t);
const char* ElementTypeName(ElementType t);  // "float32", "bfloat16", ...
const char* ReduceOpName(ReduceOp op);       // "sum", "max", "min"

// The element type of a tensor dtype; packed INT4 has none (move it as
// bytes) and is Unimplemented.
StatusOr<ElementType> ElementTypeOf(DType dtype);

// ElementTypeFor<float>::value == ElementType::kFloat32, for typed helpers.
template <typename T>
struct ElementTypeFor;
template <>
struct ElementTypeFor<uint8_t> {
  static constexpr ElementType value = ElementType::kUInt8;
};
template <>
struct ElementTypeFor<int8_t> {
  static constexpr ElementType value = ElementType::kInt8;
};
template <>
struct ElementTypeFor<int32_t> {
  static constexpr ElementType value = ElementType::kInt32;
};
template <>
struct ElementTypeFor<int64_t> {
  static constexpr ElementType value = ElementType::kInt64;
};
template <>
struct ElementTypeFor<float> {
  static constexpr ElementType value = ElementType::kFloat32;
};
template <>
struct ElementTypeFor<double> {
  static constexpr ElementType value = ElementType::kFloat64;
};

}  // namespace baton
