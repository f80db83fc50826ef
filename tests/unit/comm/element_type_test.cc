#include "runtime/comm/element_type.h"

#include <gtest/gtest.h>

namespace baton {
namespace {

TEST(ElementType, SizesAndNames) {
  EXPECT_EQ(ElementSize(ElementType::kUInt8), 1u);
  EXPECT_EQ(ElementSize(ElementType::kBFloat16), 2u);
  EXPECT_EQ(ElementSize(ElementType::kInt32), 4u);
  EXPECT_EQ(ElementSize(ElementType::kFloat32), 4u);
  EXPECT_EQ(ElementSize(ElementType::kFloat64), 8u);
  EXPECT_EQ(ElementSize(ElementType::kInt64), 8u);
  EXPECT_STREQ(ElementTypeName(ElementType::kFloat64), "float64");
  EXPECT_STREQ(ElementTypeName(ElementType::kBFloat16), "bfloat16");
  EXPECT_STREQ(ReduceOpName(ReduceOp::kSum), "sum");
  EXPECT_STREQ(ReduceOpName(ReduceOp::kMax), "max");
}

TEST(ElementType, FromTensorDTypes) {
  EXPECT_EQ(*ElementTypeOf(DType::kF32), ElementType::kFloat32);
  EXPECT_EQ(*ElementTypeOf(DType::kF16), ElementType::kFloat16);
  EXPECT_EQ(*ElementTypeOf(DType::kBF16), ElementType::kBFloat16);
  EXPECT_EQ(*ElementTypeOf(DType::kI32), ElementType::kInt32);
  EXPECT_EQ(*ElementTypeOf(DType::kI8), ElementType::kInt8);
  StatusOr<ElementType> packed = ElementTypeOf(DType::kI4);
  ASSERT_FALSE(packed.ok());
  EXPECT_EQ(packed.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(packed.status().message().find("I4"), std::string::npos) << packed.status().message();
}

TEST(ElementType, TypedMapping) {
  EXPECT_EQ(ElementTypeFor<float>::value, ElementType::kFloat32);
  EXPECT_EQ(ElementTypeFor<double>::value, ElementType::kFloat64);
  EXPECT_EQ(ElementTypeFor<int32_t>::value, ElementType::kInt32);
  EXPECT_EQ(ElementTypeFor<int64_t>::value, ElementType::kInt64);
}

}  // namespace
}  // namespace baton
