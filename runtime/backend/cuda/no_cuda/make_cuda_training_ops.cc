// The build without CUDA: no GPU training ops (see make_cuda_training_ops.h).
#include "runtime/backend/cuda/training/make_cuda_training_ops.h"

namespace baton {

StatusOr<std::unique_ptr<TrainingOps>> MakeCudaTrainingOps(Backend&) {
  return Status::Unavailable("this build of Baton has no CUDA backend (configure with -DBATON_CUDA=ON)");
}

}  // namespace baton
