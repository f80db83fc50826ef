// AbortJob: the last resort when a rank cannot go on (a peer died, a
// collective failed): print why, with this rank, and end the whole job.
//
// Under mpirun it calls MPI_Abort, so every rank exits non-zero at once
// instead of the others waiting for this one; without MPI (or after
// MPI_Finalize) it exits the process. The exit code is status.ExitCode()
// (1 if that would be 0). Safe to call from any thread, before or after
// MPI_Init. Header free of MPI so that stages may call it.
#pragma once

#include "runtime/core/status.h"

namespace baton {

[[noreturn]] void AbortJob(const Status& status);

}  // namespace baton
