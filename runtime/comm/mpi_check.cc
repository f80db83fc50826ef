#include "runtime/comm/mpi_check.h"

#include <cstring>

namespace baton {
namespace {

// __FILE__ is absolute in our builds; the path inside the repository is
// what a reader can open.
const char* RepoPath(const char* file) {
  const char* inside = std::strstr(file, "/runtime/");
  return inside != nullptr ? inside + 1 : file;
}

const char* MpiErrorClassName(int error_class) {
  switch (error_class) {
    case MPI_ERR_BUFFER:
      return "MPI_ERR_BUFFER";
    case MPI_ERR_COUNT:
      return "MPI_ERR_COUNT";
    case MPI_ERR_TYPE:
      return "MPI_ERR_TYPE";
    case MPI_ERR_TAG:
      return "MPI_ERR_TAG";
    case MPI_ERR_COMM:
      return "MPI_ERR_COMM";
    case MPI_ERR_RANK:
      return "MPI_ERR_RANK";
    case MPI_ERR_REQUEST:
      return "MPI_ERR_REQUEST";
    case MPI_ERR_ROOT:
      return "MPI_ERR_ROOT";
    case MPI_ERR_OP:
      return "MPI_ERR_OP";
    case MPI_ERR_ARG:
      return "MPI_ERR_ARG";
    case MPI_ERR_TRUNCATE:
      return "MPI_ERR_TRUNCATE";
    case MPI_ERR_OTHER:
      return "MPI_ERR_OTHER";
    case MPI_ERR_INTERN:
      return "MPI_ERR_INTERN";
    case MPI_ERR_IN_STATUS:
      return "MPI_ERR_IN_STATUS";
    case MPI_ERR_PENDING:
      return "MPI_ERR_PENDING";
    case MPI_ERR_NO_MEM:
      return "MPI_ERR_NO_MEM";
    default:
      return "MPI error";
  }
}

}  // namespace

std::string MpiErrorString(int error) {
  int error_class = error;
  if (MPI_Error_class(error, &error_class) != MPI_SUCCESS) error_class = error;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  std::string out = MpiErrorClassName(error_class);
  if (MPI_Error_string(error, text, &length) == MPI_SUCCESS && length > 0) {
    out += ": ";
    out.append(text, static_cast<size_t>(length));
  } else {
    out += " (code " + std::to_string(error) + ")";
  }
  return out;
}

Status MpiErrorStatus(int error, const char* call, const char* file, int line) {
  std::string message = std::string(call) + " failed: " + MpiErrorString(error) + " (" + RepoPath(file) + ":" +
                        std::to_string(line) + ")";
  // MPI errors are either our own misuse or the transport failing under us;
  // neither is something a user can fix by changing their input.
  return Status::Internal(std::move(message));
}

bool MpiIsActive() {
  int initialized = 0;
  int finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  return initialized != 0 && finalized == 0;
}

}  // namespace baton
