#include "runtime/training/linear_grad.h"

#include <cblas.h>

#include "runtime/backend/cpu/cpu_backend.h"

namespace baton {

void LinearBackward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx, Tensor& dw, Tensor* db) {
  const int64_t m = x.dim(0), k = x.dim(1), n = w.dim(0);
  CpuCheck(w.dim(1) == k && dy.dim(0) == m && dy.dim(1) == n, "LinearBackward", "x [M,K], w [N,K], dy [M,N]");
  CpuCheck(dw.dim(0) == n && dw.dim(1) == k, "LinearBackward", "dw must be [N, K]");
  if (m == 0) return;
  if (dx != nullptr && dx->defined()) {
    CpuCheck(dx->dim(0) == m && dx->dim(1) == k, "LinearBackward", "dx must be [M, K]");
    // dx = dy . w
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, k, n, 1.0f, dy.data<float>(), n, w.data<float>(), k, 0.0f,
                dx->data<float>(), k);
  }
  // dw += dy^T . x
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, k, m, 1.0f, dy.data<float>(), n, x.data<float>(), k, 1.0f,
              dw.data<float>(), k);
  if (db != nullptr && db->defined() && db->numel() > 0) {
    CpuCheck(db->numel() == n, "LinearBackward", "db must be [N]");
    float* b = db->data<float>();
    const float* g = dy.data<float>();
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) b[j] += g[i * n + j];
    }
  }
}

}  // namespace baton
