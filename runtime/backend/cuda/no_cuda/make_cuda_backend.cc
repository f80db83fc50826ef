// MakeCudaBackend for builds without CUDA (BATON_CUDA=OFF or no nvcc).
#include "runtime/backend/cuda/make_cuda_backend.h"

namespace baton {

StatusOr<std::unique_ptr<Backend>> MakeCudaBackend(DType, int) {
  return Status::Unavailable("this Baton was built without CUDA (configure with nvcc available, BATON_CUDA=ON)");
}

bool CudaBackendCompiledIn() { return false; }

}  // namespace baton
