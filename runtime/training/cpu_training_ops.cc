#include "runtime/training/cpu_training_ops.h"

#include <cmath>
#include <cstring>

#include "runtime/training/activation_grad.h"
#include "runtime/training/causal_attention.h"
#include "runtime/training/embedding_grad.h"
#include "runtime/training/linear_grad.h"
#include "runtime/training/norm_grad.h"
#include "runtime/training/rope_grad.h"

namespace baton {

void CpuTrainingOps::Zero(Tensor& t) { std::memset(t.raw(), 0, t.nbytes()); }

void CpuTrainingOps::Copy(const Tensor& src, Tensor& dst) {
  CpuCheck(src.numel() == dst.numel() && src.dtype() == dst.dtype(), "Copy", "same size and dtype");
  std::memcpy(dst.raw(), src.raw(), src.nbytes());
}

void CpuTrainingOps::LinearBackward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx, Tensor& dw,
                                    Tensor* db) {
  baton::LinearBackward(x, w, dy, dx, dw, db);
}

void CpuTrainingOps::NormBackward(NormOp op, const Tensor& x, const Tensor& weight, float eps, const Tensor& dy,
                                  Tensor& dx, Tensor& dweight, Tensor* dbias) {
  if (op == NormOp::kLayerNorm) {
    LayerNormBackward(x, weight, eps, dy, dx, dweight, dbias);
  } else {
    RmsNormBackward(x, weight, eps, dy, dx, dweight);
  }
}

void CpuTrainingOps::GeluNewBackward(const Tensor& x, const Tensor& dy, Tensor& dx) {
  baton::GeluNewBackward(x, dy, dx);
}

void CpuTrainingOps::SwiGluBackward(const Tensor& gate_up, const Tensor& dout, Tensor& dgate_up) {
  baton::SwiGluBackward(gate_up, dout, dgate_up);
}

void CpuTrainingOps::RopeBackward(Tensor& dqkv, const Tensor& positions, const Tensor& inv_freq, int num_heads,
                                  int num_kv_heads, int head_dim) {
  baton::RopeBackward(dqkv, positions, inv_freq, num_heads, num_kv_heads, head_dim);
}

void CpuTrainingOps::CausalAttentionForward(const Tensor& qkv, const std::vector<int>& seq_starts,
                                            const AttentionShape& shape, Tensor& out, Tensor& lse) {
  baton::CausalAttentionForward(qkv, seq_starts, shape, out, lse);
}

void CpuTrainingOps::CausalAttentionBackward(const Tensor& qkv, const Tensor& out, const Tensor& lse,
                                             const Tensor& dout, const std::vector<int>& seq_starts,
                                             const AttentionShape& shape, Tensor& dqkv) {
  baton::CausalAttentionBackward(qkv, out, lse, dout, seq_starts, shape, dqkv);
}

void CpuTrainingOps::EmbeddingBackward(const Tensor& ids, const Tensor& dy, Tensor& dtable) {
  baton::EmbeddingBackward(ids, dy, dtable);
}

StatusOr<LossSum> CpuTrainingOps::LmHeadCrossEntropy(const Tensor& x, const Tensor& head, const Tensor& targets,
                                                     float grad_scale, Tensor* dx, Tensor* dhead) {
  return baton::LmHeadCrossEntropy(x, head, targets, grad_scale, dx, dhead);
}

void CpuTrainingOps::AdamWUpdate(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq,
                                 const AdamWScalars& s, Tensor* compute_copy) {
  CpuCheck(param.numel() == grad.numel() && param.numel() == exp_avg.numel() && param.numel() == exp_avg_sq.numel(),
           "AdamW", "parameter, gradient and moments of one size");
  float* p = param.data<float>();
  const float* g = grad.data<float>();
  float* m = exp_avg.data<float>();
  float* v = exp_avg_sq.data<float>();
  const int64_t n = param.numel();
  // Elementwise, so threads change no bit of the result; it matters with
  // --offload-optimizer, where a whole GPU model's update runs here.
#pragma omp parallel for if (n > 65536)
  for (int64_t j = 0; j < n; ++j) {
    const float gj = g[j] * s.grad_scale;
    p[j] *= s.decay;
    m[j] += (gj - m[j]) * s.one_minus_beta1;
    v[j] = v[j] * s.beta2 + s.one_minus_beta2 * gj * gj;
    const float denom = std::sqrt(v[j]) / s.bias_correction2_sqrt + s.eps;
    p[j] -= s.step_size * (m[j] / denom);
  }
  if (compute_copy != nullptr && compute_copy->defined()) Copy(param, *compute_copy);
}

StatusOr<double> CpuTrainingOps::SumSquares(const std::vector<Tensor>& xs) {
  double total = 0;
  for (const Tensor& x : xs) {
    double sum = 0;
    const float* v = x.data<float>();
    for (int64_t i = 0; i < x.numel(); ++i) sum += static_cast<double>(v[i]) * v[i];
    total += sum;
  }
  return total;
}

}  // namespace baton
