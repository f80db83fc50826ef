#include "launch/cli/finetune_device.h"

#include "runtime/backend/cuda/make_cuda_backend.h"
#include "runtime/backend/cuda/training/make_cuda_training_ops.h"
#include "runtime/comm/nccl_factory.h"

namespace baton::cli {
namespace {

StatusOr<std::unique_ptr<Communicator>> NcclOver(Communicator& group, Backend& backend) {
  BATON_ASSIGN_OR_RETURN(CommOptions options, CommOptionsFromEnv(group.name() + "-nccl"));
  return MakeNcclCommunicator(group, backend, std::move(options));
}

}  // namespace

StatusOr<std::unique_ptr<FinetuneDevice>> FinetuneDevice::Open(const FinetuneFlags& f, int local_rank,
                                                               ProcessMesh* mesh) {
  std::unique_ptr<FinetuneDevice> d(new FinetuneDevice());
  if (f.device != "cuda") return d;
  const DType dtype = f.dtype == "f32" ? DType::kF32 : DType::kBF16;
  BATON_ASSIGN_OR_RETURN(d->backend_, MakeCudaBackend(dtype, local_rank));
  BATON_ASSIGN_OR_RETURN(d->ops_, MakeCudaTrainingOps(*d->backend_));
  d->trainer_device_.ops = d->ops_.get();
  if (mesh != nullptr && f.pp > 1) {
    BATON_ASSIGN_OR_RETURN(d->pipeline_, NcclOver(mesh->pipeline(), *d->backend_));
    BATON_ASSIGN_OR_RETURN(d->pipeline_grads_, NcclOver(mesh->pipeline(), *d->backend_));
    d->trainer_device_.pipeline = d->pipeline_.get();
    d->trainer_device_.pipeline_grads = d->pipeline_grads_.get();
  }
  if (mesh != nullptr && f.dp > 1) {
    BATON_ASSIGN_OR_RETURN(d->data_parallel_, NcclOver(mesh->data_parallel(), *d->backend_));
    d->trainer_device_.data_parallel = d->data_parallel_.get();
  }
  return d;
}

}  // namespace baton::cli
