// Where `baton finetune` runs its math: nothing to open on the CPU; on a
// GPU, the rank's CUDA backend (GPU = local rank), its training ops, and
// NCCL communicators over the pipeline (one per direction) and
// data-parallel groups for the tensors that cross ranks (the MPI groups keep
// carrying control values).
#pragma once

#include <memory>

#include "launch/cli/finetune_flags.h"
#include "runtime/backend/backend.h"
#include "runtime/comm/process_mesh.h"
#include "runtime/training/pipeline_trainer.h"

namespace baton::cli {

class FinetuneDevice {
 public:
  // Collective over the mesh's groups when flags.device is cuda. `mesh` is
  // null for a one-process run.
  static StatusOr<std::unique_ptr<FinetuneDevice>> Open(const FinetuneFlags& flags, int local_rank, ProcessMesh* mesh);
  // What PipelineTrainer::Create takes (all null on the CPU).
  const TrainerDevice& trainer_device() const { return trainer_device_; }

 private:
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<TrainingOps> ops_;
  std::unique_ptr<Communicator> pipeline_, pipeline_grads_, data_parallel_;
  TrainerDevice trainer_device_;
};

}  // namespace baton::cli
