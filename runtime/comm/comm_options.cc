#include "runtime/comm/comm_options.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace baton {
namespace {

// A year: longer than any job, short enough that milliseconds fit int64.
constexpr double kMaxTimeoutSeconds = 365.0 * 24 * 3600;

}  // namespace

StatusOr<std::chrono::milliseconds> ParseCommTimeout(std::string_view seconds) {
  auto bad = [&](const char* why) {
    return Status::InvalidArgument(std::string(kCommTimeoutEnv) + "='" + std::string(seconds) + "' " + why +
                                   " (seconds to wait for a peer, 0 = forever)");
  };
  double value = 0;
  const char* end = seconds.data() + seconds.size();
  auto [ptr, ec] = std::from_chars(seconds.data(), end, value);
  if (ec != std::errc() || ptr != end) return bad("is not a number");
  if (!std::isfinite(value) || value < 0) return bad("must be a non-negative number");
  if (value > kMaxTimeoutSeconds) return bad("is longer than a year");
  auto ms = static_cast<int64_t>(std::llround(value * 1000.0));
  if (value > 0 && ms == 0) ms = 1;  // "0.0001" means a tiny timeout, not none
  return std::chrono::milliseconds(ms);
}

StatusOr<std::chrono::milliseconds> CommTimeoutFromEnv() {
  const char* value = std::getenv(kCommTimeoutEnv);
  if (value == nullptr || *value == '\0') return kDefaultCommTimeout;
  return ParseCommTimeout(value);
}

StatusOr<CommOptions> CommOptionsFromEnv(std::string name) {
  CommOptions options;
  options.name = std::move(name);
  BATON_ASSIGN_OR_RETURN(options.timeout, CommTimeoutFromEnv());
  return options;
}

std::string DescribeTimeout(std::chrono::milliseconds timeout) {
  if (timeout.count() == 0) return "no timeout";
  char buf[64];
  if (timeout.count() % 1000 == 0) {
    std::snprintf(buf, sizeof(buf), "%lld s", static_cast<long long>(timeout.count() / 1000));
  } else {
    std::snprintf(buf, sizeof(buf), "%g s", static_cast<double>(timeout.count()) / 1000.0);
  }
  return buf;
}

}  // namespace baton
