// BATON_MPI_CHECK: every MPI call that can fail goes through it, so an MPI
// error travels up as a Status naming the call, MPI's own explanation and
// where it was made, e.g.
//   INTERNAL: MPI_Irecv(...) failed: MPI_ERR_TRUNCATE: message truncated
//   (runtime/comm/mpi_communicator.cc:120)
// MPI returns errors only on communicators whose error handler is
// MPI_ERRORS_RETURN; MpiCommunicator and MpiEnvironment set it.
#pragma once

// Open MPI and MPICH would otherwise pull in the deprecated C++ bindings,
// which need a library we do not link.
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>

#include <string>

#include "runtime/core/status.h"

namespace baton {

// "MPI_ERR_TRUNCATE: message truncated": the class and text of an error code.
std::string MpiErrorString(int error);
// The Status for a failed MPI call.
Status MpiErrorStatus(int error, const char* call, const char* file, int line);
// True between MPI_Init and MPI_Finalize: when MPI objects may be freed.
bool MpiIsActive();

}  // namespace baton

#define BATON_MPI_CHECK(call)                                                      \
  do {                                                                             \
    int baton_mpi_error_ = (call);                                                 \
    if (baton_mpi_error_ != MPI_SUCCESS) {                                         \
      return ::baton::MpiErrorStatus(baton_mpi_error_, #call, __FILE__, __LINE__); \
    }                                                                              \
  } while (0)
