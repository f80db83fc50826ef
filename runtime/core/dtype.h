// Element types of tensors, and exact conversions between the 16-bit float
// formats and float32 (round to nearest, ties to even; NaN stays NaN).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "runtime/core/status.h"

namespace baton {

enum class DType : uint8_t {
  kF32,
  kF16,
  kBF16,
  kI32,
  kI8,
  kI4,  // two values per byte, low nibble first (packed INT4 weights)
};

// Bits per element: 32, 16, 16, 32, 8, 4.
int DTypeBits(DType t);
// Bytes for n elements (rounds packed INT4 up to whole bytes).
size_t DTypeBytes(DType t, size_t n);
// Safetensors spelling: "F32", "F16", "BF16", "I32", "I8", "I4".
const char* DTypeName(DType t);
// Parses a safetensors dtype; an unknown one is InvalidArgument naming it.
StatusOr<DType> ParseDType(std::string_view name);
// Lower-case CLI spelling: "f32"/"float32", "f16"/"float16", "bf16"/"bfloat16".
StatusOr<DType> ParseFloatDTypeFlag(std::string_view name);

uint16_t FloatToBf16(float f);
float Bf16ToFloat(uint16_t h);
uint16_t FloatToF16(float f);
float F16ToFloat(uint16_t h);

// Converts n elements of a float type (F32, F16, BF16) to float32.
void ConvertToF32(const void* src, DType src_type, size_t n, float* dst);
// Converts n float32 values to a float type (F32, F16, BF16).
void ConvertFromF32(const float* src, size_t n, DType dst_type, void* dst);
bool IsFloatDType(DType t);

}  // namespace baton
