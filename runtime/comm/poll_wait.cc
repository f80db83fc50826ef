#include "runtime/comm/poll_wait.h"

#include <chrono>
#include <thread>

namespace baton {
namespace {

using Clock = std::chrono::steady_clock;

// Yield (no sleep) this long: most completions arrive within it.
constexpr auto kSpinFor = std::chrono::milliseconds(1);
// Then short sleeps, bounded latency for waits of a micro-batch's compute...
constexpr auto kShortSleepFor = std::chrono::milliseconds(100);
constexpr auto kShortSleep = std::chrono::microseconds(50);
// ...then longer ones for waits that are clearly idle.
constexpr auto kLongSleep = std::chrono::microseconds(1000);

void Backoff(Clock::duration waited) {
  if (waited < kSpinFor) {
    std::this_thread::yield();
  } else if (waited < kShortSleepFor) {
    std::this_thread::sleep_for(kShortSleep);
  } else {
    std::this_thread::sleep_for(kLongSleep);
  }
}

}  // namespace

Status PollUntilDone(const std::function<StatusOr<bool>()>& poll, const CommOptions& options,
                     const std::function<std::string()>& describe) {
  const Clock::time_point start = Clock::now();
  Clock::time_point next_liveness = start + options.liveness_interval;
  while (true) {
    StatusOr<bool> done = poll();
    if (!done.ok()) return done.status();
    if (*done) return Status::Ok();
    const Clock::time_point now = Clock::now();
    if (options.timeout.count() > 0 && now - start >= options.timeout) {
      return Status::Unavailable(describe() + " timed out after " + DescribeTimeout(options.timeout) +
                                 ": peer dead or stuck?");
    }
    if (options.liveness && now >= next_liveness) {
      Status alive = options.liveness();
      if (!alive.ok()) return alive.WithContext(describe());
      next_liveness = now + options.liveness_interval;
    }
    Backoff(now - start);
  }
}

}  // namespace baton
