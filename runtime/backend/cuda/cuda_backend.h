// CudaBackend: Backend on one NVIDIA GPU.
//
// Activations and weights are stored in the compute dtype chosen at
// construction (F32, BF16 or F16); all arithmetic accumulates in float32.
// F32 mode keeps cuBLAS off TF32, so it matches CpuBackend to float32
// rounding and serves parity tests. Each op is one kernel (or one cuBLAS
// call) in its own .cu file, launched on the backend's stream; ops return
// before the GPU finishes, and ToHostF32 / Synchronize wait for it.
// Device memory comes from a caching allocator (device_allocator.h).
//
// Ops take the Backend interface's void signatures: a broken shape contract
// or a failed launch is a programming error and aborts naming the op (as
// CpuBackend does). What can fail at run time has a Status path:
// MakeCudaBackend (device, stream and cuBLAS handle creation) and
// TryAllocate (out of memory, with the sizes).
// Thread-safety: one thread at a time; that thread's current device must be
// this backend's (Create sets it).
// Header is C++17-clean: .cu files include it.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <array>
#include <initializer_list>
#include <memory>
#include <vector>

#include "runtime/backend/backend.h"
#include "runtime/backend/cuda/decode_attention.cuh"
#include "runtime/backend/cuda/device_allocator.h"
#include "runtime/backend/cuda/step_host_io.h"

namespace baton {

class CudaBackend final : public Backend {
 public:
  static StatusOr<std::unique_ptr<CudaBackend>> Create(DType compute_dtype, int device);
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  Device device() const override { return Device::kCuda; }
  const char* name() const override { return "cuda"; }
  DType compute_dtype() const override { return compute_dtype_; }
  int device_index() const { return device_; }
  cudaStream_t stream() const { return stream_; }
  // The cuBLAS handle bound to stream(), for ops outside this class (training).
  cublasHandle_t cublas() const { return cublas_; }
  cuda::DeviceAllocator& allocator() { return *allocator_; }

  // Allocate with the out-of-memory case as a Status (ResourceExhausted,
  // naming the shape, the bytes asked for and what the device has free).
  StatusOr<Tensor> TryAllocate(const Shape& shape, DType dtype);
  // Waits for all queued work; a kernel fault surfaces here as a Status.
  Status Synchronize();

  Tensor Allocate(const Shape& shape, DType dtype) override;
  Tensor Upload(const Tensor& host, DType dtype) override;
  Tensor ToHostF32(const Tensor& device_tensor) override;

  void Embedding(const Tensor& ids, const Tensor& table, Tensor& out) override;
  void AddEmbedding(const Tensor& ids, const Tensor& table, Tensor& x) override;
  void Linear(const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& y) override;
  void FusedLinear(const Tensor& x, const Tensor& w, const Tensor& bias, const LinearStep& step, Tensor& normed,
                   Tensor& staging, Tensor& out) override;
  void LayerNorm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps, Tensor& y) override;
  void RmsNorm(const Tensor& x, const Tensor& weight, float eps, Tensor& y) override;
  void AddInPlace(Tensor& x, const Tensor& y) override;
  void AddNorm(NormOp op, const Tensor& x, Tensor& residual, const Tensor& weight, const Tensor& bias, float eps,
               Tensor& normed) override;
  void Rope(Tensor& qkv, const Tensor& positions, const Tensor& inv_freq, int num_heads, int num_kv_heads,
            int head_dim) override;
  void RopeStoreKv(Tensor& qkv, const Tensor& positions, const Tensor& inv_freq, const PagedAttentionBatch& batch,
                   const AttentionShape& shape, Tensor& cache_k, Tensor& cache_v) override;
  void GeluNew(Tensor& x) override;
  void SwiGlu(const Tensor& gate_up, Tensor& out) override;
  void StoreKv(const Tensor& qkv, const PagedAttentionBatch& batch, const AttentionShape& shape, Tensor& cache_k,
               Tensor& cache_v) override;
  void PagedAttention(const Tensor& qkv, const Tensor& cache_k, const Tensor& cache_v, const PagedAttentionBatch& batch,
                      const AttentionShape& shape, Tensor& out) override;
  void RopeAttention(Tensor& qkv, const Tensor& positions, const Tensor& inv_freq, const PagedAttentionBatch& batch,
                     const AttentionShape& shape, Tensor& cache_k, Tensor& cache_v, Tensor& out) override;
  void GatherRows(const Tensor& x, const Tensor& rows, Tensor& out) override;
  // sample_tokens.cuh; waits for the ids (the one sync of a decode step).
  void SampleTokens(const Tensor& logits, const SampleBatch& batch, std::vector<int32_t>& tokens) override;
  // The ids' copy lands in page-locked memory and is waited for by an event,
  // so a step queued after it keeps running (the scheduler's run-ahead).
  bool AsyncGreedy() const override { return true; }
  void StartGreedyTokens(const Tensor& logits, TokenTicket& ticket) override;
  void FinishTokens(TokenTicket& ticket, std::vector<int32_t>& tokens) override;
  void CopyToDevice(const Tensor& source, Tensor& device) override;

  // CUDA graphs, captured from this backend's stream (thread-local mode).
  bool SupportsGraphs() const override { return true; }
  // step_host_io.h: the step's kernels read and write page-locked memory.
  Tensor NextStepInputs(int64_t count, int64_t first, int64_t token_rows) override;
  void FetchStepInputs(Tensor& device) override;
  void StepGreedyTokens(const Tensor& logits, Tensor& ids) override;
  void StartStepTokens(const Tensor& ids, TokenTicket& ticket) override;
  void BeginGraph() override;
  int EndGraph() override;
  void RunGraph(int graph) override;
  void DropGraphs() override;
  uint64_t scratch_generation() const override { return scratch_generation_; }

 private:
  CudaBackend(DType compute_dtype, int device) : compute_dtype_(compute_dtype), device_(device) {}

  // Aborts naming `op` unless every tensor lives on the GPU.
  static void RequireDevice(const char* op, std::initializer_list<const Tensor*> tensors);
  // attention_workspace_ (floats) and attention_counters_ (zeroed ints)
  // hold at least this much; growing either makes recorded graphs stale.
  // The decode kernel (decode_attention.cuh) with its split plan; `rope`:
  // null, or RoPE and the K/V store folded in.
  void RunDecodeAttention(const Tensor& qkv, const Tensor& cache_k, const Tensor& cache_v,
                          const PagedAttentionBatch& batch, const AttentionShape& shape, Tensor& out,
                          const cuda::DecodeRope* rope);
  // The step's token ids (device I32 [rows]) into `tokens`; waits for them.
  void CopyTokensToHost(const Tensor& ids, std::vector<int32_t>& tokens);
  void EnsureAttentionScratch(int64_t floats, int64_t counters);

  const DType compute_dtype_;
  const int device_;
  int multiprocessors_ = 1;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  std::shared_ptr<cuda::DeviceAllocator> allocator_;
  Tensor cublas_workspace_;     // given to cuBLAS so it never allocates (graph capture)
  Tensor attention_workspace_;  // split-K partial results, grown on demand
  Tensor attention_counters_;   // decode_attention.cu's per-(sequence, kv head) tickets, zero between calls
  // Switches for before/after measurements (environment, read at Create):
  // BATON_DECODE_ATTENTION=off keeps decodes on paged_attention.cu's warp
  // kernel, BATON_FUSED_ADD_NORM=off runs AddNorm as AddInPlace + norm,
  // BATON_GEMV=off sends products of a few rows to cuBLAS too,
  // BATON_FRESH_PREFILL=off keeps prompts with nothing cached on the paged
  // prefill kernel, BATON_DECODE_FUSIONS=off runs FusedLinear and
  // RopeStoreKv as their separate ops; BATON_DECODE_SPLIT_KEYS=N gives each
  // decode-attention split at least N keys.
  // (BATON_CHAINED_LAUNCH=off, chained_launch.h, is process-wide.)
  bool decode_attention_ = true;
  bool fused_add_norm_ = true;
  bool gemv_ = true;
  bool fresh_prefill_ = true;
  bool decode_fusions_ = true;
  int decode_split_keys_ = cuda::kDefaultMinKeysPerSplit;
  Tensor sampling_workspace_;  // SampleTokens' per-row scratch, grown on demand
  // StartGreedyTokens' landing places, used round robin; a ticket holds one
  // until FinishTokens.
  struct TokenLanding {
    int32_t* host = nullptr;  // page-locked
    int64_t capacity = 0;
    cudaEvent_t copied = nullptr;
    bool held = false;
  };
  std::array<TokenLanding, 4> token_landings_;
  std::unique_ptr<cuda::StepHostIo> step_io_;  // made on first use
  int next_landing_ = 0;
  // CopyToDevice's page-locked copies of small host sources, used round
  // robin.
  // From pageable memory cudaMemcpyAsync may wait for the stream to drain,
  // which would stall a step queued behind the one running.
  struct HostStaging {
    void* host = nullptr;
    size_t capacity = 0;
    cudaEvent_t copied = nullptr;  // recorded after the copy that read it last
  };
  std::array<HostStaging, 8> host_staging_;
  int next_staging_ = 0;
  std::vector<cudaGraphExec_t> graphs_;  // by id; null once dropped
  bool capturing_ = false;
  uint64_t scratch_generation_ = 0;  // bumped when attention_workspace_ is replaced
};

}  // namespace baton
