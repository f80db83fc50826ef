#include "runtime/comm/abort_job.h"

#include <cstdio>
#include <cstdlib>

#include "runtime/comm/mpi_check.h"

namespace baton {

void AbortJob(const Status& status) {
  const int code = status.ok() ? 1 : status.ExitCode();
  const bool mpi_alive = MpiIsActive();
  int rank = -1;
  int size = 0;
  if (mpi_alive) {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
  }
  if (rank >= 0) {
    std::fprintf(stderr, "baton: rank %d of %d: fatal: %s\n", rank, size, status.ToString().c_str());
  } else {
    std::fprintf(stderr, "baton: fatal: %s\n", status.ToString().c_str());
  }
  std::fflush(stdout);
  std::fflush(stderr);
  if (mpi_alive) MPI_Abort(MPI_COMM_WORLD, code);
  // MPI_Abort does not return under Open MPI; if some MPI does, or MPI is
  // not running, end the process without running destructors that might
  // wait on the peers this job just lost.
  std::_Exit(code);
}

}  // namespace baton
