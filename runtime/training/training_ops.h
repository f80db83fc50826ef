// TrainingOps: the math of a training step on one device. The layer pass,
// the stage, the parameter units and the optimizer call only this (and the
// forward ops of its Backend), so the same trainer runs on the CPU (float32
// reference, cpu_training_ops.h) and on a GPU (runtime/backend/cuda/training).
//
// Mixed precision, as DeepSpeed and Megatron do it: activations and their
// gradients are in the backend's compute dtype (float32 on the CPU, bf16 or
// float32 on a GPU); parameter gradients, master weights and the AdamW
// moments are always float32. Weight-gradient ops ADD into their float32
// accumulators, so the micro-batches of one optimizer step sum in place.
// Every tensor is the backend's memory. One thread at a time.
#pragma once

#include <vector>

#include "runtime/backend/backend.h"
#include "runtime/core/status.h"
#include "runtime/core/tensor.h"
#include "runtime/training/lm_head_loss.h"

namespace baton {

// One AdamW update's scalars, rounded to float as torch's kernels get them
// (see adamw.h for the formula they enter).
struct AdamWScalars {
  float decay = 1.0f;  // 1 - lr * weight_decay
  float one_minus_beta1 = 0.1f;
  float beta2 = 0.999f;
  float one_minus_beta2 = 0.001f;
  float step_size = 1e-3f;             // lr / (1 - beta1^t)
  float bias_correction2_sqrt = 1.0f;  // sqrt(1 - beta2^t)
  float eps = 1e-8f;
  // The global-norm clipping coefficient (1: none), applied as the gradient
  // is read: g * grad_scale, one float multiply, so the result equals
  // scaling the gradient first.
  float grad_scale = 1.0f;
};

class TrainingOps {
 public:
  virtual ~TrainingOps() = default;
  // The device's forward ops and memory.
  virtual Backend& backend() = 0;
  DType compute_dtype() { return backend().compute_dtype(); }
  // Uninitialised [rows, cols] activations in the compute dtype.
  Tensor Activations(int64_t rows, int64_t cols) { return backend().Allocate({rows, cols}, compute_dtype()); }
  // Float32 zeros (gradient accumulators, moments, master weights).
  virtual Tensor ZerosF32(const Shape& shape) = 0;
  virtual void Zero(Tensor& t) = 0;
  // dst = src: same element count; converts between float dtypes.
  virtual void Copy(const Tensor& src, Tensor& dst) = 0;

  // Backward ops: the CPU reference of each is the free function of the same
  // name in this folder, which documents shapes and semantics.
  virtual void LinearBackward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx, Tensor& dw,
                              Tensor* db) = 0;
  // Backward of Backend::LayerNorm (with dbias) or RmsNorm (dbias null).
  virtual void NormBackward(NormOp op, const Tensor& x, const Tensor& weight, float eps, const Tensor& dy, Tensor& dx,
                            Tensor& dweight, Tensor* dbias) = 0;
  virtual void GeluNewBackward(const Tensor& x, const Tensor& dy, Tensor& dx) = 0;
  virtual void SwiGluBackward(const Tensor& gate_up, const Tensor& dout, Tensor& dgate_up) = 0;
  virtual void RopeBackward(Tensor& dqkv, const Tensor& positions, const Tensor& inv_freq, int num_heads,
                            int num_kv_heads, int head_dim) = 0;
  virtual void CausalAttentionForward(const Tensor& qkv, const std::vector<int>& seq_starts,
                                      const AttentionShape& shape, Tensor& out, Tensor& lse) = 0;
  virtual void CausalAttentionBackward(const Tensor& qkv, const Tensor& out, const Tensor& lse, const Tensor& dout,
                                       const std::vector<int>& seq_starts, const AttentionShape& shape,
                                       Tensor& dqkv) = 0;
  virtual void EmbeddingBackward(const Tensor& ids, const Tensor& dy, Tensor& dtable) = 0;
  // The loss reaches the host, so this waits for the device.
  virtual StatusOr<LossSum> LmHeadCrossEntropy(const Tensor& x, const Tensor& head, const Tensor& targets,
                                               float grad_scale, Tensor* dx, Tensor* dhead) = 0;

  // The optimizer, on float32 vectors of equal length. When `compute_copy`
  // is non-null and defined, the updated parameter is also written there,
  // rounded to its dtype (the 16-bit copy the forward reads).
  virtual void AdamWUpdate(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq,
                           const AdamWScalars& s, Tensor* compute_copy) = 0;
  // The sum of x^2 over every element of `xs`, in double; waits for the
  // device once.
  virtual StatusOr<double> SumSquares(const std::vector<Tensor>& xs) = 0;

  // The first error of the ops queued so far (a GPU's kernel fault, an
  // out-of-memory); waits for the device.
  virtual Status Synchronize() = 0;
};

}  // namespace baton
