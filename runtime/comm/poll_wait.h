// PollUntilDone: the one waiting loop behind every blocking communicator
// call, so that no wait can outlive a dead peer.
//
// Blocking MPI calls (MPI_Wait, MPI_Recv, MPI_Probe) never return when the
// peer dies without the launcher noticing, so backends start non-blocking
// operations and poll them here. The loop spins with yields for the first
// moments (low latency for the usual, quick completion), then sleeps a
// little between polls so an idle rank does not steal a busy one's core.
// Backend-neutral: a NCCL backend polls cudaEventQuery the same way.
#pragma once

#include <functional>
#include <string>

#include "runtime/comm/comm_options.h"
#include "runtime/core/status.h"

namespace baton {

// Calls `poll` until it returns true or an error. Past options.timeout
// (unless zero) returns Unavailable "<describe()> timed out after 30 s:
// peer dead or stuck?"; every options.liveness_interval calls
// options.liveness, whose error ends the wait as "<describe()>: <error>".
Status PollUntilDone(const std::function<StatusOr<bool>()>& poll, const CommOptions& options,
                     const std::function<std::string()>& describe);

}  // namespace baton
