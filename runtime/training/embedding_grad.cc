#include "runtime/training/embedding_grad.h"

#include "runtime/backend/cpu/cpu_backend.h"

namespace baton {

void EmbeddingBackward(const Tensor& ids, const Tensor& dy, Tensor& dtable) {
  const int64_t n = ids.numel(), h = dtable.dim(1), rows = dtable.dim(0);
  CpuCheck(dy.dim(0) == n && dy.dim(1) == h, "EmbeddingBackward", "dy must be [N, hidden]");
  const int32_t* id = ids.data<int32_t>();
  for (int64_t i = 0; i < n; ++i) {
    CpuCheck(id[i] >= 0 && id[i] < rows, "EmbeddingBackward", "id out of range");
    float* dst = dtable.data<float>() + static_cast<int64_t>(id[i]) * h;
    const float* src = dy.data<float>() + i * h;
    for (int64_t j = 0; j < h; ++j) dst[j] += src[j];
  }
}

}  // namespace baton
