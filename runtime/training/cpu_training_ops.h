// CpuTrainingOps: TrainingOps on the CPU backend, float32 throughout. Each
// op is the reference function of the same name in this folder, so the CPU
// trainer's numbers are exactly those the fixture tests check.
#pragma once

#include "runtime/backend/cpu/cpu_backend.h"
#include "runtime/training/training_ops.h"

namespace baton {

class CpuTrainingOps final : public TrainingOps {
 public:
  Backend& backend() override { return backend_; }
  Tensor ZerosF32(const Shape& shape) override { return Tensor::Zeros(shape, DType::kF32); }
  void Zero(Tensor& t) override;
  void Copy(const Tensor& src, Tensor& dst) override;

  void LinearBackward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx, Tensor& dw, Tensor* db) override;
  void NormBackward(NormOp op, const Tensor& x, const Tensor& weight, float eps, const Tensor& dy, Tensor& dx,
                    Tensor& dweight, Tensor* dbias) override;
  void GeluNewBackward(const Tensor& x, const Tensor& dy, Tensor& dx) override;
  void SwiGluBackward(const Tensor& gate_up, const Tensor& dout, Tensor& dgate_up) override;
  void RopeBackward(Tensor& dqkv, const Tensor& positions, const Tensor& inv_freq, int num_heads, int num_kv_heads,
                    int head_dim) override;
  void CausalAttentionForward(const Tensor& qkv, const std::vector<int>& seq_starts, const AttentionShape& shape,
                              Tensor& out, Tensor& lse) override;
  void CausalAttentionBackward(const Tensor& qkv, const Tensor& out, const Tensor& lse, const Tensor& dout,
                               const std::vector<int>& seq_starts, const AttentionShape& shape, Tensor& dqkv) override;
  void EmbeddingBackward(const Tensor& ids, const Tensor& dy, Tensor& dtable) override;
  StatusOr<LossSum> LmHeadCrossEntropy(const Tensor& x, const Tensor& head, const Tensor& targets, float grad_scale,
                                       Tensor* dx, Tensor* dhead) override;

  void AdamWUpdate(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq,
                   const AdamWScalars& s, Tensor* compute_copy) override;
  StatusOr<double> SumSquares(const std::vector<Tensor>& xs) override;
  Status Synchronize() override { return Status::Ok(); }

 private:
  CpuBackend backend_;
};

}  // namespace baton
