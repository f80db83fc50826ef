// MakeCudaTrainingOps: TrainingOps on a CUDA backend. Like MakeCudaBackend,
// this header needs no CUDA: a build without it links a version that
// answers Unavailable, so the trainer picks its device at run time.
#pragma once

#include <memory>

#include "runtime/backend/backend.h"
#include "runtime/core/status.h"
#include "runtime/training/training_ops.h"

namespace baton {

// Training ops on `backend` (made by MakeCudaBackend; it must outlive the
// ops). Activations in its compute dtype, gradients and optimizer state in
// float32. InvalidArgument when `backend` is not a CUDA backend.
StatusOr<std::unique_ptr<TrainingOps>> MakeCudaTrainingOps(Backend& backend);

}  // namespace baton
