// ParamUnit: parameters that are trained together (one layer, the token
// embedding, the final norm, an untied LM head) kept as ONE flat float32
// vector, so that ZeRO-3 moves a whole layer with one collective.
//
// Three ways to hold it, by the stage's data-parallel layout:
//  - kLocal (dp = 1): the full vector is resident; gradients accumulate in
//    a resident full vector; nothing is communicated.
//  - kReplicated (dp > 1, --zero 0): every replica keeps everything;
//    gradients are summed across replicas once per optimizer step.
//  - kSharded (dp > 1, --zero 3): this rank keeps 1/dp of the values, of the
//    gradient and (through the optimizer, which sees only shards) of the
//    AdamW moments. The full values exist only between Gather and Release;
//    a backward pass's full gradient only between BeginGrad and EndGrad,
//    which reduce-scatters it into this rank's gradient shard.
//
// The unit's tensors inside the stage's StageWeights (parameters and
// gradients) are rebound to views of the flat buffers, so layer code keeps
// reading LayerWeights. The buffers live on the TrainingOps' device. Values
// and gradients are float32 (the master copy); when the device computes in
// a 16-bit dtype, the parameter fields view a copy in that dtype instead:
// refreshed by RefreshCompute after each update (kLocal, kReplicated), or
// made from the shard at each gather, so ZeRO-3 gathers half the bytes. Padding (the vector is rounded up to a multiple
// of dp) is zero in values and gradients, and AdamW keeps zeros at zero. One thread at a time.
#pragma once

#include <string>
#include <vector>

#include "runtime/comm/communicator.h"
#include "runtime/core/status.h"
#include "runtime/core/tensor.h"
#include "runtime/training/training_ops.h"

namespace baton {

enum class ShardMode { kLocal, kReplicated, kSharded };

class ParamUnit {
 public:
  // `params` hold the loaded initial values; `grads` are the matching
  // gradient fields (their contents are ignored). `dp` may be null only
  // for kLocal.
  // `dp` moves `ops`' memory (NCCL for a GPU).
  ParamUnit(std::string name, std::vector<Tensor*> params, std::vector<Tensor*> grads, ShardMode mode, Communicator* dp,
            TrainingOps& ops);

  const std::string& name() const { return name_; }
  ShardMode mode() const { return mode_; }
  int64_t numel() const { return numel_; }
  // This rank's values and accumulated gradient: the optimizer's view.
  Tensor& shard() { return shard_; }
  Tensor& grad_shard() { return grad_shard_; }
  // The 16-bit copy of the full values that an optimizer step writes along
  // with the shard (kLocal, kReplicated), or null.
  Tensor* compute_copy() { return compute_.defined() ? &compute_ : nullptr; }
  // Whether this rank's gradient shard counts toward the global norm (a
  // replicated unit counts on replica 0 only).
  bool counts_in_norm() const { return mode_ != ShardMode::kReplicated || dp_->rank() == 0; }

  // Full values bound into the parameter fields. StartGather begins the
  // all-gather (a prefetch); Gather finishes it. No-ops unless kSharded.
  Status StartGather();
  Status Gather();
  void Release();

  // One backward pass's gradient: see the header comment.
  void BeginGrad();
  Status EndGrad();
  // Once per optimizer step, after the last backward: sums replicated
  // gradients across the dp group.
  Status SyncGrads();
  void ZeroGrad();
  // After the optimizer changed shard(): updates the compute-dtype copy.
  void RefreshCompute();

  // The full values / full accumulated gradient as float32 host tensors,
  // assembled on every rank of the dp group (collective for kSharded). For
  // export, checkpoints and tests.
  StatusOr<Tensor> FullValues();
  StatusOr<Tensor> FullGrads();
  // Overwrites the unit from a full float32 host vector of numel() values
  // (every rank passes the same; each keeps its part).
  Status SetFullValues(const Tensor& full);

  // Resident bytes: shard values, shard gradient; and the largest full
  // buffer this unit materialises at once.
  size_t shard_bytes() const { return shard_.nbytes(); }
  size_t grad_bytes() const { return grad_shard_.nbytes(); }
  size_t full_bytes() const { return DTypeBytes(compute_dtype_, static_cast<size_t>(padded_)); }

 private:
  void Bind(const Tensor& flat, const std::vector<Tensor*>& fields) const;
  void Unbind(const std::vector<Tensor*>& fields) const;
  StatusOr<Tensor> AllGatherFlat(const Tensor& shard);

  std::string name_;
  std::vector<Tensor*> params_, grads_;
  std::vector<Shape> shapes_;
  ShardMode mode_;
  Communicator* dp_;
  TrainingOps& ops_;
  DType compute_dtype_;
  int64_t numel_ = 0, padded_ = 0, shard_numel_ = 0, shard_offset_ = 0;
  Tensor shard_, grad_shard_;
  Tensor compute_;           // 16-bit compute copy of the full values (not kSharded)
  Tensor full_, full_grad_;  // kSharded: alive between Gather/Release, BeginGrad/EndGrad
  Tensor shard_compute_;     // kSharded, 16-bit: the shard cast for the gather in flight
  Request gather_;
  bool gathering_ = false;
};

}  // namespace baton
