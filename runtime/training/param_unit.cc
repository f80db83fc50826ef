#include "runtime/training/param_unit.h"

#include <algorithm>
#include <cstring>

#include "runtime/comm/element_type.h"

namespace baton {

ParamUnit::ParamUnit(std::string name, std::vector<Tensor*> params, std::vector<Tensor*> grads, ShardMode mode,
                     Communicator* dp, TrainingOps& ops)
    : name_(std::move(name)),
      params_(std::move(params)),
      grads_(std::move(grads)),
      mode_(mode),
      dp_(dp),
      ops_(ops),
      compute_dtype_(ops.compute_dtype()) {
  for (const Tensor* p : params_) {
    shapes_.push_back(p->shape());
    numel_ += p->numel();
  }
  const int64_t ranks = mode_ == ShardMode::kSharded ? dp_->size() : 1;
  shard_numel_ = (numel_ + ranks - 1) / ranks;
  padded_ = shard_numel_ * ranks;
  shard_offset_ = mode_ == ShardMode::kSharded ? shard_numel_ * dp_->rank() : 0;

  // The full initial vector on the host, then this rank's part of it.
  Tensor full = Tensor::Zeros({padded_}, DType::kF32);
  int64_t offset = 0;
  for (const Tensor* p : params_) {
    const Tensor values = p->dtype() == DType::kF32 ? *p : p->ToF32();
    std::memcpy(full.data<float>() + offset, values.raw(), values.nbytes());
    offset += p->numel();
  }
  Backend& backend = ops_.backend();
  grad_shard_ = ops_.ZerosF32({shard_numel_});
  if (mode_ == ShardMode::kSharded) {
    shard_ = backend.Upload(full.Rows(shard_offset_, shard_offset_ + shard_numel_).Clone(), DType::kF32);
    Unbind(params_);
    Unbind(grads_);
    return;
  }
  shard_ = backend.device() == Device::kCpu ? full : backend.Upload(full, DType::kF32);
  if (compute_dtype_ != DType::kF32) {
    compute_ = backend.Allocate({padded_}, compute_dtype_);
    RefreshCompute();
  }
  Bind(compute_dtype_ != DType::kF32 ? compute_ : shard_, params_);
  Bind(grad_shard_, grads_);
}

void ParamUnit::Bind(const Tensor& flat, const std::vector<Tensor*>& fields) const {
  int64_t offset = 0;
  for (size_t i = 0; i < fields.size(); ++i) {
    const int64_t n = NumElements(shapes_[i]);
    *fields[i] = flat.Rows(offset, offset + n).Reshape(shapes_[i]);
    offset += n;
  }
}

void ParamUnit::Unbind(const std::vector<Tensor*>& fields) const {
  for (Tensor* t : fields) *t = Tensor();
}

void ParamUnit::RefreshCompute() {
  if (compute_.defined()) ops_.Copy(shard_, compute_);
}

Status ParamUnit::StartGather() {
  if (mode_ != ShardMode::kSharded || gathering_ || full_.defined()) return Status::Ok();
  Backend& backend = ops_.backend();
  full_ = backend.Allocate({padded_}, compute_dtype_);
  const Tensor* send = &shard_;
  if (compute_dtype_ != DType::kF32) {
    shard_compute_ = backend.Allocate({shard_numel_}, compute_dtype_);
    ops_.Copy(shard_, shard_compute_);
    send = &shard_compute_;
  }
  BATON_ASSIGN_OR_RETURN(ElementType type, ElementTypeOf(compute_dtype_));
  BATON_ASSIGN_OR_RETURN(gather_, dp_->IAllGather(send->raw(), full_.raw(), static_cast<size_t>(shard_numel_), type));
  gathering_ = true;
  return Status::Ok();
}

Status ParamUnit::Gather() {
  if (mode_ != ShardMode::kSharded) return Status::Ok();
  BATON_RETURN_IF_ERROR(StartGather());
  if (gathering_) {
    gathering_ = false;
    Status waited = dp_->Wait(gather_);
    shard_compute_ = Tensor();
    if (!waited.ok()) return waited.WithContext("ZeRO-3 gather of " + name_);
    Bind(full_, params_);
  }
  return Status::Ok();
}

void ParamUnit::Release() {
  if (mode_ != ShardMode::kSharded || gathering_) return;
  Unbind(params_);
  full_ = Tensor();
}

void ParamUnit::BeginGrad() {
  if (mode_ != ShardMode::kSharded) return;
  full_grad_ = ops_.ZerosF32({padded_});
  Bind(full_grad_, grads_);
}

Status ParamUnit::EndGrad() {
  if (mode_ != ShardMode::kSharded) return Status::Ok();
  Tensor mine = ops_.backend().Allocate({shard_numel_}, DType::kF32);
  Status reduced =
      dp_->ReduceScatter(full_grad_.raw(), mine.raw(), static_cast<size_t>(shard_numel_), ElementType::kFloat32);
  Unbind(grads_);
  full_grad_ = Tensor();
  if (!reduced.ok()) return reduced.WithContext("ZeRO-3 gradient reduce-scatter of " + name_);
  ops_.backend().AddInPlace(grad_shard_, mine);
  return Status::Ok();
}

Status ParamUnit::SyncGrads() {
  if (mode_ != ShardMode::kReplicated) return Status::Ok();
  Status reduced =
      dp_->AllReduce(grad_shard_.raw(), grad_shard_.raw(), static_cast<size_t>(shard_numel_), ElementType::kFloat32);
  return reduced.ok() ? reduced : reduced.WithContext("gradient all-reduce of " + name_);
}

void ParamUnit::ZeroGrad() { ops_.Zero(grad_shard_); }

StatusOr<Tensor> ParamUnit::AllGatherFlat(const Tensor& shard) {
  Backend& backend = ops_.backend();
  Tensor full = shard;
  if (mode_ == ShardMode::kSharded) {
    full = backend.Allocate({padded_}, DType::kF32);
    BATON_RETURN_IF_ERROR(
        dp_->AllGather(shard.raw(), full.raw(), static_cast<size_t>(shard_numel_), ElementType::kFloat32));
  }
  const Tensor host = backend.device() == Device::kCpu ? full : backend.ToHostF32(full);
  return host.Rows(0, numel_).Clone();
}

StatusOr<Tensor> ParamUnit::FullValues() { return AllGatherFlat(shard_); }
StatusOr<Tensor> ParamUnit::FullGrads() { return AllGatherFlat(grad_shard_); }

Status ParamUnit::SetFullValues(const Tensor& full) {
  if (full.numel() != numel_ || full.dtype() != DType::kF32 || full.device() != Device::kCpu) {
    return Status::InvalidArgument(name_ + ": expected " + std::to_string(numel_) + " float32 host values, got " +
                                   full.DebugString());
  }
  Tensor mine = Tensor::Zeros({shard_numel_}, DType::kF32);
  const int64_t end = std::min(numel_, shard_offset_ + shard_numel_);
  if (end > shard_offset_) {
    std::memcpy(mine.raw(), full.data<float>() + shard_offset_,
                static_cast<size_t>(end - shard_offset_) * sizeof(float));
  }
  ops_.backend().CopyToDevice(mine, shard_);
  RefreshCompute();
  return Status::Ok();
}

}  // namespace baton
