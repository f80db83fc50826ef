#include "runtime/sampling/sampling_params.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

namespace baton {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
const float kNaN = std::nanf("");

// Validate() must fail with InvalidArgument and a message naming the field
// and showing the value.
void ExpectRejected(const SamplingParams& p, const std::string& field, const std::string& got) {
  Status s = p.Validate();
  ASSERT_FALSE(s.ok()) << field << " = " << got << " was accepted";
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find(field), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("(got " + got + ")"), std::string::npos) << s.message();
}

TEST(SamplingParams, DefaultsAndTypicalSettingsAreValid) {
  EXPECT_TRUE(SamplingParams{}.Validate().ok());
  SamplingParams p;
  p.temperature = 0.0f;  // greedy
  EXPECT_TRUE(p.Validate().ok());
  EXPECT_TRUE(p.greedy());
  p = {.temperature = 0.7f, .top_k = 50, .top_p = 0.9f, .min_p = 0.05f, .repetition_penalty = 1.1f, .seed = 7};
  EXPECT_TRUE(p.Validate().ok());
  EXPECT_FALSE(p.greedy());
  p = {.temperature = 2.0f, .top_k = 1, .top_p = 1.0f, .min_p = 1.0f, .repetition_penalty = 0.5f};
  EXPECT_TRUE(p.Validate().ok()) << "boundary values are allowed";
}

TEST(SamplingParams, ExactMessagesForTheDocumentedExamples) {
  SamplingParams p;
  p.temperature = -1.0f;
  EXPECT_EQ(p.Validate().message(), "temperature must be >= 0 (got -1)");
  p = {};
  p.top_p = 1.5f;
  EXPECT_EQ(p.Validate().message(), "top_p must be in (0, 1] (got 1.5)");
}

TEST(SamplingParams, TemperatureRejected) {
  SamplingParams p;
  p.temperature = -0.5f;
  ExpectRejected(p, "temperature", "-0.5");
  p.temperature = kNaN;
  ExpectRejected(p, "temperature", "nan");
  p.temperature = kInf;
  ExpectRejected(p, "temperature", "inf");
}

TEST(SamplingParams, TopKRejected) {
  SamplingParams p;
  p.top_k = -1;
  ExpectRejected(p, "top_k", "-1");
}

TEST(SamplingParams, TopPRejected) {
  SamplingParams p;
  p.top_p = 0.0f;
  ExpectRejected(p, "top_p", "0");
  p.top_p = -0.1f;
  ExpectRejected(p, "top_p", "-0.1");
  p.top_p = 1.01f;
  ExpectRejected(p, "top_p", "1.01");
  p.top_p = kNaN;
  ExpectRejected(p, "top_p", "nan");
  p.top_p = -kInf;
  ExpectRejected(p, "top_p", "-inf");
}

TEST(SamplingParams, MinPRejected) {
  SamplingParams p;
  p.min_p = -0.01f;
  ExpectRejected(p, "min_p", "-0.01");
  p.min_p = 2.0f;
  ExpectRejected(p, "min_p", "2");
  p.min_p = kNaN;
  ExpectRejected(p, "min_p", "nan");
}

TEST(SamplingParams, RepetitionPenaltyRejected) {
  SamplingParams p;
  p.repetition_penalty = 0.0f;
  ExpectRejected(p, "repetition_penalty", "0");
  p.repetition_penalty = -1.2f;
  ExpectRejected(p, "repetition_penalty", "-1.2");
  p.repetition_penalty = kInf;
  ExpectRejected(p, "repetition_penalty", "inf");
}

}  // namespace
}  // namespace baton
