#include "runtime/comm/element_type.h"

#include <string>

namespace baton {

size_t ElementSize(ElementType t) {
  switch (t) {
    case ElementType::kUInt8:
    case ElementType::kInt8:
      return 1;
    case ElementType::kFloat16:
    case ElementType::kBFloat16:
      return 2;
    case ElementType::kInt32:
    case ElementType::kFloat32:
      return 4;
    case ElementType::kInt64:
    case ElementType::kFloat64:
      return 8;
  }
  return 0;
}

const char* ElementTypeName(ElementType t) {
  switch (t) {
    case ElementType::kUInt8:
      return "uint8";
    case ElementType::kInt8:
      return "int8";
    case ElementType::kInt32:
      return "int32";
    case ElementType::kInt64:
      return "int64";
    case ElementType::kFloat16:
      return "float16";
    case ElementType::kBFloat16:
      return "bfloat16";
    case ElementType::kFloat32:
      return "float32";
    case ElementType::kFloat64:
      return "float64";
  }
  return "unknown";
}

const char* ReduceOpName(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return "sum";
    case ReduceOp::kMax:
      return "max";
    case ReduceOp::kMin:
      return "min";
  }
  return "unknown";
}

StatusOr<ElementType> ElementTypeOf(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return ElementType::kFloat32;
    case DType::kF16:
      return ElementType::kFloat16;
    case DType::kBF16:
      return ElementType::kBFloat16;
    case DType::kI32:
      return ElementType::kInt32;
    case DType::kI8:
      return ElementType::kInt8;
    case DType::kI4:
      break;
  }
  return Status::Unimplemented(std::string("no collective element type for dtype ") + DTypeName(dtype) +
                               " (packed values can only be moved as bytes)");
}

}  // namespace baton
