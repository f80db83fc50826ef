// MakeNcclCommunicator: the one way to get a Communicator over NCCL. This
// header needs neither CUDA nor NCCL: a build without them links a version
// that answers Unavailable, so callers choose the transport at run time
// without #ifdefs (as MakeCudaBackend does for the backend).
#pragma once

#include <memory>

#include "runtime/backend/backend.h"
#include "runtime/comm/comm_options.h"
#include "runtime/comm/communicator.h"
#include "runtime/core/status.h"

namespace baton {

// A communicator over the ranks of `bootstrap` (same ranks, same order)
// moving device buffers of `backend`, which must be a CUDA backend on this
// rank's own GPU. Collective over `bootstrap`: rank 0 makes the NCCL id and
// broadcasts it there (a host communicator, e.g. the MPI pipeline group),
// then every rank joins the NCCL communicator. Joining is polled with
// options.timeout, so a rank that never arrives is Unavailable, not a hang.
// Unavailable when Baton was built without NCCL; InvalidArgument when
// `bootstrap` moves device memory or `backend` is not CUDA.
// Work queued on the backend's stream before a send or collective is
// finished before NCCL reads the buffer; see nccl_communicator.h.
StatusOr<std::unique_ptr<Communicator>> MakeNcclCommunicator(Communicator& bootstrap, Backend& backend,
                                                             CommOptions options);

// True when this build has the NCCL communicator compiled in.
bool NcclCompiledIn();

}  // namespace baton
