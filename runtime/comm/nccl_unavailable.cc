// MakeNcclCommunicator for builds without CUDA or NCCL (runtime/CMakeLists.txt
// compiles this file only then; nccl_communicator.cc otherwise).
#include "runtime/comm/nccl_factory.h"

namespace baton {

StatusOr<std::unique_ptr<Communicator>> MakeNcclCommunicator(Communicator& bootstrap, Backend& /*backend*/,
                                                             CommOptions options) {
  return Status::Unavailable("communicator '" + options.name + "' over the " + std::to_string(bootstrap.size()) +
                             " ranks of '" + bootstrap.name() +
                             "' needs NCCL, and this Baton was built without CUDA or NCCL");
}

bool NcclCompiledIn() { return false; }

}  // namespace baton
