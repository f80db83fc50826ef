#include "runtime/training/lm_head_loss.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "runtime/backend/cpu/cpu_backend.h"

namespace baton {

LossSum LmHeadCrossEntropy(const Tensor& x, const Tensor& head, const Tensor& targets, float grad_scale, Tensor* dx,
                           Tensor* dhead, int64_t chunk_rows) {
  const int64_t n = x.dim(0), h = x.dim(1), vocab = head.dim(0);
  CpuCheck(head.dim(1) == h && targets.numel() == n, "LmHeadCrossEntropy", "x [N,H], head [V,H], targets [N]");
  const bool backward = dx != nullptr && dx->defined();
  if (backward) {
    CpuCheck(dx->numel() == x.numel() && dhead != nullptr && dhead->numel() == head.numel(), "LmHeadCrossEntropy",
             "dx [N,H] and dhead [V,H]");
  }
  chunk_rows = std::max<int64_t>(1, chunk_rows);
  const int32_t* tgt = targets.data<int32_t>();
  Tensor logits = Tensor::Empty({std::min(chunk_rows, std::max<int64_t>(n, 1)), vocab}, DType::kF32);
  LossSum loss;
  for (int64_t r0 = 0; r0 < n; r0 += chunk_rows) {
    const int64_t rows = std::min(chunk_rows, n - r0);
    float* z = logits.data<float>();
    const float* xr = x.data<float>() + r0 * h;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, vocab, h, 1.0f, xr, h, head.data<float>(), h, 0.0f, z,
                vocab);
    for (int64_t i = 0; i < rows; ++i) {
      float* row = z + i * vocab;
      const int32_t t = tgt[r0 + i];
      if (t == kIgnoreIndex) {  // no loss, no gradient
        std::memset(row, 0, vocab * sizeof(float));
        continue;
      }
      CpuCheck(t >= 0 && t < vocab, "LmHeadCrossEntropy", "target id out of range");
      const float max_logit = *std::max_element(row, row + vocab);
      double denom = 0;
      for (int64_t j = 0; j < vocab; ++j) denom += std::exp(static_cast<double>(row[j] - max_logit));
      const double lse = max_logit + std::log(denom);
      loss.sum += lse - row[t];
      ++loss.tokens;
      // d/dlogits of grad_scale * (lse - z_t) = grad_scale * (softmax - onehot)
      for (int64_t j = 0; j < vocab; ++j) row[j] = static_cast<float>(std::exp(row[j] - lse) * grad_scale);
      row[t] -= grad_scale;
    }
    if (!backward) continue;
    // dx = dz . head ; dhead += dz^T . x
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, h, vocab, 1.0f, z, vocab, head.data<float>(), h, 0.0f,
                dx->data<float>() + r0 * h, h);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, vocab, h, rows, 1.0f, z, vocab, xr, h, 1.0f,
                dhead->data<float>(), h);
  }
  return loss;
}

}  // namespace baton
