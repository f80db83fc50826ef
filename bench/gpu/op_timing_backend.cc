#include "bench/gpu/op_timing_backend.h"

#include "runtime/backend/cuda/cuda_check.h"

namespace baton::bench {

OpTimingBackend::~OpTimingBackend() {
  (void)Collect();
  for (cudaEvent_t e : spare_) cudaEventDestroy(e);
}

cudaEvent_t OpTimingBackend::NewEvent() {
  if (!spare_.empty()) {
    cudaEvent_t e = spare_.back();
    spare_.pop_back();
    return e;
  }
  cudaEvent_t e = nullptr;
  cudaEventCreate(&e);
  return e;
}

void OpTimingBackend::Open(std::string op) {
  if (!on_) return;
  Pending p{std::move(op), NewEvent(), NewEvent()};
  cudaEventRecord(p.start, inner_.stream());
  pending_.push_back(std::move(p));
}

void OpTimingBackend::Close() {
  if (!on_) return;
  cudaEventRecord(pending_.back().stop, inner_.stream());
}

Status OpTimingBackend::Collect() {
  BATON_RETURN_IF_ERROR(inner_.Synchronize());
  for (Pending& p : pending_) {
    float ms = 0;
    BATON_CUDA_CHECK(cudaEventElapsedTime(&ms, p.start, p.stop));
    total_ms_[p.op] += ms;
    calls_[p.op] += 1;
    spare_.push_back(p.start);
    spare_.push_back(p.stop);
  }
  pending_.clear();
  return Status::Ok();
}

void OpTimingBackend::Reset() {
  (void)Collect();
  total_ms_.clear();
  calls_.clear();
}

// Linear is split by shape (M x K -> N), the rest by op name.
#define BATON_TIMED(op, call) \
  Open(op);                   \
  call;                       \
  Close()

Tensor OpTimingBackend::ToHostF32(const Tensor& t) {
  Open("ToHostF32");
  Tensor out = inner_.ToHostF32(t);  // synchronises: the stop event is recorded after the copy is done
  Close();
  return out;
}

void OpTimingBackend::Embedding(const Tensor& ids, const Tensor& table, Tensor& out) {
  BATON_TIMED("Embedding", inner_.Embedding(ids, table, out));
}
void OpTimingBackend::AddEmbedding(const Tensor& ids, const Tensor& table, Tensor& x) {
  BATON_TIMED("AddEmbedding", inner_.AddEmbedding(ids, table, x));
}
void OpTimingBackend::Linear(const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& y) {
  BATON_TIMED("Linear " + std::to_string(w.dim(1)) + "->" + std::to_string(w.dim(0)), inner_.Linear(x, w, bias, y));
}
void OpTimingBackend::LayerNorm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps, Tensor& y) {
  BATON_TIMED("LayerNorm", inner_.LayerNorm(x, weight, bias, eps, y));
}
void OpTimingBackend::RmsNorm(const Tensor& x, const Tensor& weight, float eps, Tensor& y) {
  BATON_TIMED("RmsNorm", inner_.RmsNorm(x, weight, eps, y));
}
void OpTimingBackend::AddInPlace(Tensor& x, const Tensor& y) { BATON_TIMED("AddInPlace", inner_.AddInPlace(x, y)); }
void OpTimingBackend::AddNorm(NormOp op, const Tensor& x, Tensor& residual, const Tensor& weight, const Tensor& bias,
                              float eps, Tensor& normed) {
  BATON_TIMED("AddNorm", inner_.AddNorm(op, x, residual, weight, bias, eps, normed));
}
void OpTimingBackend::FusedLinear(const Tensor& x, const Tensor& w, const Tensor& bias, const LinearStep& step,
                                  Tensor& normed, Tensor& staging, Tensor& out) {
  static const char* const kEpilogue[] = {"", " +swiglu", " +add"};
  const std::string name = std::string(step.norm_weight != nullptr ? "Norm+" : "") + "Linear " +
                           std::to_string(w.dim(1)) + "->" + std::to_string(w.dim(0)) +
                           kEpilogue[static_cast<int>(step.epilogue)];
  BATON_TIMED(name, inner_.FusedLinear(x, w, bias, step, normed, staging, out));
}
void OpTimingBackend::RopeStoreKv(Tensor& qkv, const Tensor& positions, const Tensor& inv_freq,
                                  const PagedAttentionBatch& batch, const AttentionShape& shape, Tensor& cache_k,
                                  Tensor& cache_v) {
  BATON_TIMED("RopeStoreKv", inner_.RopeStoreKv(qkv, positions, inv_freq, batch, shape, cache_k, cache_v));
}
void OpTimingBackend::RopeAttention(Tensor& qkv, const Tensor& positions, const Tensor& inv_freq,
                                    const PagedAttentionBatch& batch, const AttentionShape& shape, Tensor& cache_k,
                                    Tensor& cache_v, Tensor& out) {
  BATON_TIMED("RopeAttention", inner_.RopeAttention(qkv, positions, inv_freq, batch, shape, cache_k, cache_v, out));
}
void OpTimingBackend::Rope(Tensor& qkv, const Tensor& positions, const Tensor& inv_freq, int num_heads,
                           int num_kv_heads, int head_dim) {
  BATON_TIMED("Rope", inner_.Rope(qkv, positions, inv_freq, num_heads, num_kv_heads, head_dim));
}
void OpTimingBackend::GeluNew(Tensor& x) { BATON_TIMED("GeluNew", inner_.GeluNew(x)); }
void OpTimingBackend::SwiGlu(const Tensor& gate_up, Tensor& out) { BATON_TIMED("SwiGlu", inner_.SwiGlu(gate_up, out)); }
void OpTimingBackend::StoreKv(const Tensor& qkv, const PagedAttentionBatch& batch, const AttentionShape& shape,
                              Tensor& cache_k, Tensor& cache_v) {
  BATON_TIMED("StoreKv", inner_.StoreKv(qkv, batch, shape, cache_k, cache_v));
}
void OpTimingBackend::PagedAttention(const Tensor& qkv, const Tensor& cache_k, const Tensor& cache_v,
                                     const PagedAttentionBatch& batch, const AttentionShape& shape, Tensor& out) {
  BATON_TIMED("PagedAttention", inner_.PagedAttention(qkv, cache_k, cache_v, batch, shape, out));
}
void OpTimingBackend::GatherRows(const Tensor& x, const Tensor& rows, Tensor& out) {
  BATON_TIMED("GatherRows", inner_.GatherRows(x, rows, out));
}

void OpTimingBackend::SampleTokens(const Tensor& logits, const SampleBatch& batch, std::vector<int32_t>& tokens) {
  BATON_TIMED("SampleTokens", inner_.SampleTokens(logits, batch, tokens));
}

}  // namespace baton::bench
