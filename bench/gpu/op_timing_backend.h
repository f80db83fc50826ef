// OpTimingBackend: a Backend that forwards every op to a CudaBackend and
// brackets it with CUDA events on that backend's stream, so one decode step
// can be split into GPU time per op kind (cudaEvent timing; no profiler
// needed). Gaps between ops (the GPU waiting for the host to launch) belong
// to no op: step time minus the sum of op times measures them.
#pragma once

#include <cuda_runtime_api.h>

#include <map>
#include <string>
#include <vector>

#include "runtime/backend/cuda/cuda_backend.h"

namespace baton::bench {

class OpTimingBackend final : public Backend {
 public:
  explicit OpTimingBackend(CudaBackend& inner) : inner_(inner) {}
  ~OpTimingBackend() override;

  // Timing is off until Start(); Collect() waits for the GPU and adds the
  // recorded intervals to the per-op totals (milliseconds).
  void Start() { on_ = true; }
  void Stop() { on_ = false; }
  Status Collect();
  const std::map<std::string, double>& total_ms() const { return total_ms_; }
  const std::map<std::string, int>& calls() const { return calls_; }
  void Reset();

  Device device() const override { return inner_.device(); }
  const char* name() const override { return "cuda+timing"; }
  DType compute_dtype() const override { return inner_.compute_dtype(); }
  Tensor Allocate(const Shape& shape, DType dtype) override { return inner_.Allocate(shape, dtype); }
  Tensor Upload(const Tensor& host, DType dtype) override { return inner_.Upload(host, dtype); }
  Tensor ToHostF32(const Tensor& t) override;

  void Embedding(const Tensor& ids, const Tensor& table, Tensor& out) override;
  void AddEmbedding(const Tensor& ids, const Tensor& table, Tensor& x) override;
  void Linear(const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& y) override;
  void LayerNorm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps, Tensor& y) override;
  void RmsNorm(const Tensor& x, const Tensor& weight, float eps, Tensor& y) override;
  void AddInPlace(Tensor& x, const Tensor& y) override;
  void AddNorm(NormOp op, const Tensor& x, Tensor& residual, const Tensor& weight, const Tensor& bias, float eps,
               Tensor& normed) override;
  void FusedLinear(const Tensor& x, const Tensor& w, const Tensor& bias, const LinearStep& step, Tensor& normed,
                   Tensor& staging, Tensor& out) override;
  void RopeStoreKv(Tensor& qkv, const Tensor& positions, const Tensor& inv_freq, const PagedAttentionBatch& batch,
                   const AttentionShape& shape, Tensor& cache_k, Tensor& cache_v) override;
  void RopeAttention(Tensor& qkv, const Tensor& positions, const Tensor& inv_freq, const PagedAttentionBatch& batch,
                     const AttentionShape& shape, Tensor& cache_k, Tensor& cache_v, Tensor& out) override;
  void Rope(Tensor& qkv, const Tensor& positions, const Tensor& inv_freq, int num_heads, int num_kv_heads,
            int head_dim) override;
  void GeluNew(Tensor& x) override;
  void SwiGlu(const Tensor& gate_up, Tensor& out) override;
  void StoreKv(const Tensor& qkv, const PagedAttentionBatch& batch, const AttentionShape& shape, Tensor& cache_k,
               Tensor& cache_v) override;
  void PagedAttention(const Tensor& qkv, const Tensor& cache_k, const Tensor& cache_v, const PagedAttentionBatch& batch,
                      const AttentionShape& shape, Tensor& out) override;
  void GatherRows(const Tensor& x, const Tensor& rows, Tensor& out) override;
  void SampleTokens(const Tensor& logits, const SampleBatch& batch, std::vector<int32_t>& tokens) override;
  void CopyToDevice(const Tensor& host, Tensor& device) override { inner_.CopyToDevice(host, device); }

 private:
  struct Pending {
    std::string op;
    cudaEvent_t start, stop;
  };
  // Records a start event; Close() records the stop event of the same op.
  void Open(std::string op);
  void Close();
  cudaEvent_t NewEvent();

  CudaBackend& inner_;
  bool on_ = false;
  std::vector<Pending> pending_;
  std::vector<cudaEvent_t> spare_;
  std::map<std::string, double> total_ms_;
  std::map<std::string, int> calls_;
};

}  // namespace baton::bench
