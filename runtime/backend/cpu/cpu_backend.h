// CpuBackend: the float32 reference implementation of Backend.
//
// Matmuls with packed weights (PackLinearWeight) run Baton's own panel
// kernel (panel_matmul.h); others go to OpenBLAS. Attention and the
// elementwise ops are plain loops over rows, parallelised with OpenMP where
// the work per row is large enough to pay. Numerics follow transformers'
// float32 eager code closely enough for the 1e-4 logit contract.
#pragma once

#include "runtime/backend/backend.h"

namespace baton {

class CpuBackend final : public Backend {
 public:
  // num_threads <= 0: leave OpenBLAS/OpenMP at their defaults.
  explicit CpuBackend(int num_threads = 0);

  Device device() const override { return Device::kCpu; }
  const char* name() const override { return "cpu"; }
  DType compute_dtype() const override { return DType::kF32; }

  Tensor Allocate(const Shape& shape, DType dtype) override;
  Tensor AllocateResident(const Shape& shape, DType dtype) override;
  Tensor Upload(const Tensor& host, DType dtype) override;
  Tensor ToHostF32(const Tensor& device_tensor) override;

  void Embedding(const Tensor& ids, const Tensor& table, Tensor& out) override;
  void AddEmbedding(const Tensor& ids, const Tensor& table, Tensor& x) override;
  void Linear(const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& y) override;
  void PackLinearWeight(Tensor& w) override;
  void LayerNorm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps, Tensor& y) override;
  void RmsNorm(const Tensor& x, const Tensor& weight, float eps, Tensor& y) override;
  void AddInPlace(Tensor& x, const Tensor& y) override;
  void AddNorm(NormOp op, const Tensor& x, Tensor& residual, const Tensor& weight, const Tensor& bias, float eps,
               Tensor& normed) override;
  void Rope(Tensor& qkv, const Tensor& positions, const Tensor& inv_freq, int num_heads, int num_kv_heads,
            int head_dim) override;
  void GeluNew(Tensor& x) override;
  void SwiGlu(const Tensor& gate_up, Tensor& out) override;
  void StoreKv(const Tensor& qkv, const PagedAttentionBatch& batch, const AttentionShape& shape, Tensor& cache_k,
               Tensor& cache_v) override;
  void PagedAttention(const Tensor& qkv, const Tensor& cache_k, const Tensor& cache_v, const PagedAttentionBatch& batch,
                      const AttentionShape& shape, Tensor& out) override;
  void GatherRows(const Tensor& x, const Tensor& rows, Tensor& out) override;
  // Every row kSampleOnHost: the host Sampler is the CPU's sampler.
  void SampleTokens(const Tensor& logits, const SampleBatch& batch, std::vector<int32_t>& tokens) override;
  void CopyToDevice(const Tensor& source, Tensor& device) override;

 private:
  int threads_ = 1;  // for the panel matmul's OpenMP split
};

// Aborts with a message when a shape precondition of an op is violated: these
// are programming errors inside Baton, never user input (which is validated
// before it reaches a backend).
void CpuCheck(bool ok, const char* op, const char* what);

// Whether this CPU runs AVX2 and FMA: the hot loops have builds for both,
// whatever -march the project was built for.
bool CpuHasAvx2Fma();

}  // namespace baton
