// Backend: the ops a transformer needs, implemented once per device.
//
// Model code calls only this interface and never branches on the device.
// CpuBackend (backend/cpu) is the float32 reference with BLAS matmuls; a
// CUDA backend implements the same ops with bf16/fp16 storage. Every op
// takes its outputs as arguments, so callers own (and can reuse) memory, and
// every forward op is shaped so that its backward can sit beside it.
//
// Shapes: activations are 2-D row-major [tokens, features]; a "linear"
// weight is [out_features, in_features] as in torch.nn.Linear.
// Thread-safety: a Backend is used by one thread at a time.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/core/status.h"
#include "runtime/core/tensor.h"

namespace baton {

// The ragged batch as the paged-attention op sees it. S sequences, N tokens
// in all; sequence s owns query rows [query_start[s], query_start[s+1]) and,
// after this step, context_len[s] tokens of K/V in the cache, the new ones
// last. All I32 tensors on the backend's device.
struct PagedAttentionBatch {
  Tensor query_start;   // [S + 1]
  Tensor context_len;   // [S]
  Tensor block_tables;  // [S, max_blocks_per_seq]: block ids, -1 past the end
  Tensor slot_mapping;  // [N]: cache slot (block * block_size + offset) of each new token
  int num_seqs = 0;
  int max_query_len = 0;
  int max_context_len = 0;
  // Host copy of query_start, filled only when every sequence's new tokens
  // are its whole context (prompts with nothing cached before them): then
  // all keys are in qkv itself, and a backend may attend over qkv without
  // reading the cache (StoreKv still fills it for later steps).
  std::vector<int> fresh_query_start;
};

struct AttentionShape {
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int block_size = 0;
  float scale = 1.0f;      // applied to q.k (1/sqrt(head_dim) for all supported models)
  int sliding_window = 0;  // 0: attend to the whole causal prefix
};

// One row of Backend::SampleTokens: the sampling parameters of the row's
// sequence (as SamplingParams, runtime/sampling) and the uniform draw in
// [0, 1) its host Sampler made for this step (ignored when greedy).
struct SampleRow {
  float temperature = 1.0f;  // 0: greedy
  int32_t top_k = 0;
  float top_p = 1.0f;
  float min_p = 0.0f;
  float repetition_penalty = 1.0f;
  double uniform = 0.0;
  // The row's token history (prompt and generated), for the repetition
  // penalty: SampleBatch::context[context_begin, context_end).
  int32_t context_begin = 0;
  int32_t context_end = 0;
};

struct SampleBatch {
  std::vector<SampleRow> rows;
  std::vector<int32_t> context;  // every row's history, back to back (host)
};

// SampleTokens' answer for a row the backend leaves to the host Sampler.
inline constexpr int32_t kSampleOnHost = -2;

// Which norm Backend::AddNorm applies.
enum class NormOp { kLayerNorm, kRmsNorm };

// What Backend::FusedLinear does with the product z = in . w^T + bias.
enum class LinearEpilogue {
  kStore,       // out = z
  kSwiGlu,      // w [2F, K], out [M, F]: out[:, i] = silu(z[:, i]) * z[:, F + i]
  kAccumulate,  // out += z (a residual add)
};

// The passes around a linear layer that a backend may fuse into it: an
// optional norm of its input (norm_weight null: none) and an epilogue.
struct LinearStep {
  NormOp norm = NormOp::kRmsNorm;
  const Tensor* norm_weight = nullptr;
  const Tensor* norm_bias = nullptr;  // LayerNorm only; null or undefined: none
  float norm_eps = 0.0f;
  LinearEpilogue epilogue = LinearEpilogue::kStore;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  virtual const char* name() const = 0;

  // Memory. Allocate returns uninitialised device memory; Upload copies a
  // host tensor (any dtype) to the device, converting floats to `dtype`.
  virtual Tensor Allocate(const Shape& shape, DType dtype) = 0;
  // Memory that is resident from the start, zeroed, for long-lived pools
  // (the KV cache). On the host a page is otherwise first touched, and
  // zeroed by the kernel, in whichever step first writes it: 0.5 s of a
  // 5 s CPU pipeline run went that way, in bursts whenever sequences
  // crossed into new blocks. Device memory needs nothing more than Allocate.
  virtual Tensor AllocateResident(const Shape& shape, DType dtype) { return Allocate(shape, dtype); }
  virtual Tensor Upload(const Tensor& host, DType dtype) = 0;
  virtual Tensor ToHostF32(const Tensor& device_tensor) = 0;
  // The dtype of activations and weights this backend computes in.
  virtual DType compute_dtype() const = 0;

  // out[n, :] = table[ids[n], :]
  virtual void Embedding(const Tensor& ids, const Tensor& table, Tensor& out) = 0;
  // x[n, :] += table[ids[n], :] (learned position embeddings)
  virtual void AddEmbedding(const Tensor& ids, const Tensor& table, Tensor& x) = 0;
  // y = x . w^T (+ bias)   x [M, K], w [N, K], bias [N] or undefined, y [M, N]
  virtual void Linear(const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& y) = 0;
  // Lays out a linear weight that will not change again for this backend's
  // matmuls. Afterwards w goes only to Linear, FusedLinear and (a tied
  // table) Embedding. The CPU packs it into column panels
  // (backend/cpu/panel_matmul.h); the default keeps it as it is.
  virtual void PackLinearWeight(Tensor& /*w*/) {}
  virtual void LayerNorm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps, Tensor& y) = 0;
  virtual void RmsNorm(const Tensor& x, const Tensor& weight, float eps, Tensor& y) = 0;
  // x += y, elementwise (residual connections)
  virtual void AddInPlace(Tensor& x, const Tensor& y) = 0;
  // The residual add and the norm after it, in one pass over the row:
  // residual += x, then normed = LayerNorm(residual) (weight, bias) or
  // RmsNorm(residual) (weight; bias ignored). Same result as AddInPlace
  // followed by LayerNorm/RmsNorm on the updated residual (the CPU's is
  // bit-identical); backends fuse it to save a pass and a launch. The
  // default runs the two ops.
  virtual void AddNorm(NormOp op, const Tensor& x, Tensor& residual, const Tensor& weight, const Tensor& bias,
                       float eps, Tensor& normed) {
    AddInPlace(residual, x);
    if (op == NormOp::kLayerNorm) {
      LayerNorm(residual, weight, bias, eps, normed);
    } else {
      RmsNorm(residual, weight, eps, normed);
    }
  }
  // A linear layer with its input norm and epilogue (LinearStep): the same
  // result as the separate ops, which the default runs (so the CPU's is
  // bit-identical to them): `normed` [M, K] takes the normed input when a
  // norm is asked, and `staging` [M, w rows] the product before a kSwiGlu or
  // kAccumulate epilogue. A backend that fuses may leave both untouched: at
  // decode the GPU folds the norm and the epilogue into its GEMV, which
  // saves a kernel and a pass over the activations each.
  virtual void FusedLinear(const Tensor& x, const Tensor& w, const Tensor& bias, const LinearStep& step, Tensor& normed,
                           Tensor& staging, Tensor& out) {
    const Tensor* in = &x;
    if (step.norm_weight != nullptr) {
      if (step.norm == NormOp::kLayerNorm) {
        LayerNorm(x, *step.norm_weight, step.norm_bias != nullptr ? *step.norm_bias : Tensor(), step.norm_eps, normed);
      } else {
        RmsNorm(x, *step.norm_weight, step.norm_eps, normed);
      }
      in = &normed;
    }
    switch (step.epilogue) {
      case LinearEpilogue::kStore:
        Linear(*in, w, bias, out);
        return;
      case LinearEpilogue::kSwiGlu:
        Linear(*in, w, bias, staging);
        SwiGlu(staging, out);
        return;
      case LinearEpilogue::kAccumulate:
        Linear(*in, w, bias, staging);
        AddInPlace(out, staging);
        return;
    }
  }
  // Rotates the first `num_heads` and next `num_kv_heads` head slices of
  // each row of qk (rotate-half convention, as transformers' Llama) by
  // position * inv_freq. qk [N, (num_heads + num_kv_heads) * head_dim] may
  // be a wider row (fused qkv): only its q and k columns are touched.
  virtual void Rope(Tensor& qkv, const Tensor& positions, const Tensor& inv_freq, int num_heads, int num_kv_heads,
                    int head_dim) = 0;
  // x = gelu_new(x): 0.5x(1 + tanh(sqrt(2/pi)(x + 0.044715x^3)))
  virtual void GeluNew(Tensor& x) = 0;
  // out[n, i] = silu(gate_up[n, i]) * gate_up[n, F + i]   gate_up [N, 2F], out [N, F]
  virtual void SwiGlu(const Tensor& gate_up, Tensor& out) = 0;
  // Writes the new tokens' K and V (columns of qkv after the q columns)
  // into the paged cache at batch.slot_mapping.
  // cache_k/cache_v: [num_blocks, block_size, num_kv_heads, head_dim].
  virtual void StoreKv(const Tensor& qkv, const PagedAttentionBatch& batch, const AttentionShape& shape,
                       Tensor& cache_k, Tensor& cache_v) = 0;
  // Rope on qkv's q and k columns (positions, inv_freq as Rope; the heads
  // from `shape`), then StoreKv of the rotated K and of V: the default runs
  // the two ops, a backend may do both in one pass.
  virtual void RopeStoreKv(Tensor& qkv, const Tensor& positions, const Tensor& inv_freq,
                           const PagedAttentionBatch& batch, const AttentionShape& shape, Tensor& cache_k,
                           Tensor& cache_v) {
    Rope(qkv, positions, inv_freq, shape.num_heads, shape.num_kv_heads, shape.head_dim);
    StoreKv(qkv, batch, shape, cache_k, cache_v);
  }
  // A rotary layer's attention: RopeStoreKv, then PagedAttention into
  // `out` (the default runs the two). qkv is scratch afterwards: a backend
  // that rotates q and k as its attention kernel reads them (the GPU's
  // decode kernel) leaves it unrotated.
  virtual void RopeAttention(Tensor& qkv, const Tensor& positions, const Tensor& inv_freq,
                             const PagedAttentionBatch& batch, const AttentionShape& shape, Tensor& cache_k,
                             Tensor& cache_v, Tensor& out) {
    RopeStoreKv(qkv, positions, inv_freq, batch, shape, cache_k, cache_v);
    PagedAttention(qkv, cache_k, cache_v, batch, shape, out);
  }
  // Causal attention of the new tokens' queries (the first q columns of
  // qkv) over each sequence's cached K/V; out [N, num_heads * head_dim].
  virtual void PagedAttention(const Tensor& qkv, const Tensor& cache_k, const Tensor& cache_v,
                              const PagedAttentionBatch& batch, const AttentionShape& shape, Tensor& out) = 0;
  // out[r, :] = x[rows[r], :]  (pick the rows whose logits are wanted)
  virtual void GatherRows(const Tensor& x, const Tensor& rows, Tensor& out) = 0;
  // One token per row of logits [rows, vocab] (this backend's memory), the
  // one runtime/sampling's Sampler picks from the same row with the same
  // uniform draw, so that seeded results do not depend on the device; only
  // the ids reach the host. A row the backend cannot reproduce exactly is
  // answered kSampleOnHost, and the caller runs the host Sampler on it (the
  // CPU backend answers so for every row: its logits already are host
  // memory, and the host Sampler is its sampler). tokens: resized to rows.
  virtual void SampleTokens(const Tensor& logits, const SampleBatch& batch, std::vector<int32_t>& tokens) = 0;
  // Greedy sampling that does not wait (AsyncGreedy): StartGreedyTokens
  // queues the argmax of every logits row into ticket.ids (this backend's
  // [rows] I32, which later queued ops may read: the next step's input
  // tokens) and its copy to the host; FinishTokens waits for that copy
  // alone, not for work queued after it. Ties go to the lowest id, as in
  // SampleTokens. A backend without it is never asked.
  struct TokenTicket {
    Tensor ids;
    int slot = -1;  // the backend's
  };
  virtual bool AsyncGreedy() const { return false; }
  virtual void StartGreedyTokens(const Tensor& /*logits*/, TokenTicket& /*ticket*/) {}
  virtual void FinishTokens(TokenTicket& /*ticket*/, std::vector<int32_t>& /*tokens*/) {}
  // Copies host memory, or memory of this backend, into an existing tensor
  // of this backend (same dtype and element count), queued like an op:
  // fixed-address inputs.
  virtual void CopyToDevice(const Tensor& source, Tensor& device) = 0;

  // Step graphs (CUDA graphs). Between BeginGraph and EndGraph the ops are
  // recorded, not run; RunGraph replays them with whatever the same
  // addresses hold then. Only ops on memory that outlives the graph may be
  // recorded, and nothing may be allocated meanwhile. A backend without
  // graphs says so in SupportsGraphs and is never asked for one.
  virtual bool SupportsGraphs() const { return false; }
  virtual void BeginGraph() {}
  virtual int EndGraph() { return -1; }  // the graph's id
  virtual void RunGraph(int /*graph*/) {}
  virtual void DropGraphs() {}
  // Changes whenever the backend replaces scratch memory that recorded ops
  // point at (a grown workspace): graphs recorded before are then stale.
  virtual uint64_t scratch_generation() const { return 0; }

  // A graph step's host I/O, moved by the step's own ops, so that nothing
  // is queued between two steps. NextStepInputs returns host I32 [count] to
  // fill for the next FetchStepInputs to run; that op copies entries
  // [first, count) over the same entries of `device` and leaves those
  // before `first` as they are. StepGreedyTokens is StartGreedyTokens'
  // argmax as an op, into ids ([rows] I32, this backend's memory, rows <=
  // token_rows), which also lands them on the host; after queuing the step,
  // StartStepTokens gives the ticket for them that FinishTokens reads
  // (ticket.ids = ids). FetchStepInputs and StepGreedyTokens are ops (and
  // recordable); the other two are host calls. Each NextStepInputs must be
  // followed by exactly one FetchStepInputs that runs (eagerly, or in one
  // replay). A NextStepInputs that moves the host memory bumps
  // scratch_generation(). Only a backend with graphs and AsyncGreedy is
  // asked.
  virtual Tensor NextStepInputs(int64_t /*count*/, int64_t /*first*/, int64_t /*token_rows*/) { return Tensor(); }
  virtual void FetchStepInputs(Tensor& /*device*/) {}
  virtual void StepGreedyTokens(const Tensor& /*logits*/, Tensor& /*ids*/) {}
  virtual void StartStepTokens(const Tensor& /*ids*/, TokenTicket& /*ticket*/) {}
};

}  // namespace baton
