// CommOptions: how long a communicator waits for a peer before giving up.
//
// Every blocking operation of a Communicator polls its peer with a deadline,
// so a rank whose peer died reports Unavailable instead of hanging forever.
// The deadline comes from BATON_COMM_TIMEOUT_S (seconds, fractions allowed,
// 0 = wait forever, default 30). A server that idles waiting for work should
// poll with Test() rather than block, since a quiet peer is not a dead one.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <string_view>

#include "runtime/core/status.h"

namespace baton {

inline constexpr char kCommTimeoutEnv[] = "BATON_COMM_TIMEOUT_S";
inline constexpr std::chrono::milliseconds kDefaultCommTimeout{30000};

// Called now and then while an operation waits; a non-ok Status ends the
// wait with that error. Meant for cheap checks (a shutdown flag, a
// heartbeat file), never for communication: it runs inside the wait, on
// the waiting thread, possibly on several threads at once.
using LivenessCheck = std::function<Status()>;

struct CommOptions {
  // Names the communicator in errors: "recv from pipeline rank 2 ...".
  std::string name = "world";
  // Zero waits forever.
  std::chrono::milliseconds timeout = kDefaultCommTimeout;
  LivenessCheck liveness;
  std::chrono::milliseconds liveness_interval{100};
};

// Parses a BATON_COMM_TIMEOUT_S value: non-negative seconds, e.g. "30",
// "0.5", "0". Anything else is InvalidArgument naming the variable.
StatusOr<std::chrono::milliseconds> ParseCommTimeout(std::string_view seconds);
// The timeout from the environment, or the default when the variable is
// unset or empty.
StatusOr<std::chrono::milliseconds> CommTimeoutFromEnv();
// Options named `name` with the environment's timeout.
StatusOr<CommOptions> CommOptionsFromEnv(std::string name);

// "30 s", "0.5 s", "no timeout": how error messages spell a timeout.
std::string DescribeTimeout(std::chrono::milliseconds timeout);

}  // namespace baton
