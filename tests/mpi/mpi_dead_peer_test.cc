// A peer that dies must not hang the others. Run with 2 ranks: rank 1
// vanishes (no MPI_Finalize, exit code 3) before sending what rank 0 waits
// for. Rank 0's Recv must come back Unavailable within BATON_COMM_TIMEOUT_S
// plus a little; it prints DEAD_PEER_RESULT ok|FAIL and then AbortJob ends
// the job non-zero. If mpirun notices the dead rank first it kills rank 0
// before that, which is also a clean, non-hanging end: the wrapper
// (expect_job_failure.py) checks the exit code and the time either way.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "runtime/comm/mpi_communicator.h"
#include "runtime/comm/mpi_environment.h"

namespace baton {
namespace {

int Run(int argc, char** argv) {
  StatusOr<std::unique_ptr<MpiEnvironment>> env = MpiEnvironment::Init(&argc, &argv);
  if (!env.ok()) AbortJob(env.status());
  StatusOr<CommOptions> options = CommOptionsFromEnv("world");
  if (!options.ok()) AbortJob(options.status());
  StatusOr<std::unique_ptr<MpiCommunicator>> world = (*env)->World(*options);
  if (!world.ok()) AbortJob(world.status());
  if ((*world)->size() != 2) AbortJob(Status::InvalidArgument("run with exactly 2 ranks"));
  // Both ranks are up and connected before rank 1 dies.
  Status met = (*world)->Barrier();
  if (!met.ok()) AbortJob(met);

  if ((*world)->rank() == 1) _exit(3);  // dies without a word

  const auto start = std::chrono::steady_clock::now();
  int32_t value = 0;
  Status status = (*world)->Recv(&value, sizeof(value), 1, 7);
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double limit = static_cast<double>((*world)->options().timeout.count()) / 1000.0;
  const std::string want = "recv from rank 1 (tag 7) timed out after " + DescribeTimeout((*world)->options().timeout) +
                           ": peer dead or stuck?";
  const bool ok = status.code() == StatusCode::kUnavailable && status.message() == want && limit > 0 &&
                  waited >= limit && waited < limit + 5.0;
  std::printf("DEAD_PEER_RESULT %s after %.2f s (timeout %.2f s): %s\n", ok ? "ok" : "FAIL", waited, limit,
              status.ToString().c_str());
  std::fflush(stdout);
  AbortJob(status.ok() ? Status::Internal("received from a dead rank") : status);
}

}  // namespace
}  // namespace baton

int main(int argc, char** argv) { return baton::Run(argc, argv); }
