#include "runtime/sampling/sampling_params.h"

#include <cmath>
#include <cstdio>
#include <string>

namespace baton {
namespace {

// "-1", "1.5", "nan", "inf": short, and round-trips the values users type.
std::string FormatValue(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}

Status Bad(const char* field, const char* rule, double got) {
  return Status::InvalidArgument(std::string(field) + " must be " + rule + " (got " + FormatValue(got) + ")");
}

// Non-finite values get their own wording: "temperature must be >= 0 (got
// inf)" would be true of inf and so would not explain the rejection.
Status CheckFinite(const char* field, float v) {
  if (std::isfinite(v)) return Status::Ok();
  return Bad(field, "finite", v);
}

}  // namespace

Status SamplingParams::Validate() const {
  BATON_RETURN_IF_ERROR(CheckFinite("temperature", temperature));
  if (temperature < 0.0f) return Bad("temperature", ">= 0", temperature);

  if (top_k < 0) return Bad("top_k", ">= 0", top_k);

  BATON_RETURN_IF_ERROR(CheckFinite("top_p", top_p));
  if (!(top_p > 0.0f && top_p <= 1.0f)) return Bad("top_p", "in (0, 1]", top_p);

  BATON_RETURN_IF_ERROR(CheckFinite("min_p", min_p));
  if (!(min_p >= 0.0f && min_p <= 1.0f)) return Bad("min_p", "in [0, 1]", min_p);

  BATON_RETURN_IF_ERROR(CheckFinite("repetition_penalty", repetition_penalty));
  if (!(repetition_penalty > 0.0f)) return Bad("repetition_penalty", "> 0", repetition_penalty);

  return Status::Ok();
}

}  // namespace baton
