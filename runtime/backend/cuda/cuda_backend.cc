#include "runtime/backend/cuda/cuda_backend.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "runtime/backend/cuda/add_in_place.cuh"
#include "runtime/backend/cuda/add_norm.cuh"
#include "runtime/backend/cuda/chained_launch.h"
#include "runtime/backend/cuda/convert.cuh"
#include "runtime/backend/cuda/cublas_check.h"
#include "runtime/backend/cuda/cuda_check.h"
#include "runtime/backend/cuda/decode_attention.cuh"
#include "runtime/backend/cuda/embedding.cuh"
#include "runtime/backend/cuda/gather_rows.cuh"
#include "runtime/backend/cuda/gelu_new.cuh"
#include "runtime/backend/cuda/gemv.cuh"
#include "runtime/backend/cuda/layer_norm.cuh"
#include "runtime/backend/cuda/linear.cuh"
#include "runtime/backend/cuda/paged_attention.cuh"
#include "runtime/backend/cuda/rms_norm.cuh"
#include "runtime/backend/cuda/rope.cuh"
#include "runtime/backend/cuda/sample_tokens.cuh"
#include "runtime/backend/cuda/store_kv.cuh"
#include "runtime/backend/cuda/swiglu.cuh"
#include "runtime/backend/cuda/training/flash_attention_train.cuh"

namespace baton {
namespace {

constexpr size_t kCublasWorkspaceBytes = 32u << 20;  // what cuBLAS asks for on Hopper
// Host sources up to this size (a step's inputs) go through CopyToDevice's
// page-locked staging; larger ones (training's parameters) are copied
// straight from where they are, so the staging never pins much memory.
constexpr size_t kStagedCopyMaxBytes = size_t{4} << 20;

[[noreturn]] void Die(const char* op, const std::string& what) {
  std::fprintf(stderr, "baton: fatal: cuda %s: %s\n", op, what.c_str());
  std::abort();
}

void DieIfError(const Status& status, const char* op) {
  if (!status.ok()) Die(op, status.ToString());
}

#define BATON_CUDA_OR_DIE(op, call) DieIfError(::baton::cuda::CudaStatus((call), #call, __FILE__, __LINE__), op)

bool EnvOff(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && (std::strcmp(v, "off") == 0 || std::strcmp(v, "0") == 0);
}

}  // namespace

StatusOr<std::unique_ptr<CudaBackend>> CudaBackend::Create(DType compute_dtype, int device) {
  if (!IsFloatDType(compute_dtype)) {
    return Status::InvalidArgument(std::string("CUDA backend compute dtype must be F32, F16 or BF16, not ") +
                                   DTypeName(compute_dtype));
  }
  std::unique_ptr<CudaBackend> b(new CudaBackend(compute_dtype, device));
  b->decode_attention_ = !EnvOff("BATON_DECODE_ATTENTION");
  b->fused_add_norm_ = !EnvOff("BATON_FUSED_ADD_NORM");
  b->gemv_ = !EnvOff("BATON_GEMV");
  b->fresh_prefill_ = !EnvOff("BATON_FRESH_PREFILL");
  b->decode_fusions_ = !EnvOff("BATON_DECODE_FUSIONS");
  if (const char* keys = std::getenv("BATON_DECODE_SPLIT_KEYS")) b->decode_split_keys_ = std::max(1, std::atoi(keys));
  BATON_CUDA_CHECK(cudaSetDevice(device));
  int major = 0;
  BATON_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  cuda::SetChainedLaunch(major >= 9 && !EnvOff("BATON_CHAINED_LAUNCH"));
  BATON_CUDA_CHECK(cudaDeviceGetAttribute(&b->multiprocessors_, cudaDevAttrMultiProcessorCount, device));
  BATON_CUDA_CHECK(cudaStreamCreateWithFlags(&b->stream_, cudaStreamNonBlocking));
  b->allocator_ = std::make_shared<cuda::DeviceAllocator>(device);
  BATON_CUBLAS_CHECK(cublasCreate(&b->cublas_));
  BATON_CUBLAS_CHECK(cublasSetStream(b->cublas_, b->stream_));
  // Default math keeps float32 GEMMs off TF32 (parity mode); 16-bit GEMMs
  // still use tensor cores, and must not reduce split-K partials in 16 bits.
  BATON_CUBLAS_CHECK(cublasSetMathMode(
      b->cublas_, static_cast<cublasMath_t>(CUBLAS_DEFAULT_MATH | CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)));
  BATON_ASSIGN_OR_RETURN(b->cublas_workspace_,
                         b->TryAllocate({static_cast<int64_t>(kCublasWorkspaceBytes)}, DType::kI8));
  BATON_CUBLAS_CHECK(cublasSetWorkspace(b->cublas_, b->cublas_workspace_.raw(), kCublasWorkspaceBytes));
  return b;
}

CudaBackend::~CudaBackend() {
  if (stream_ != nullptr) cudaStreamSynchronize(stream_);
  step_io_.reset();
  DropGraphs();
  if (cublas_ != nullptr) cublasDestroy(cublas_);
  cublas_workspace_ = Tensor();
  attention_workspace_ = Tensor();
  attention_counters_ = Tensor();
  sampling_workspace_ = Tensor();
  for (TokenLanding& l : token_landings_) {
    if (l.host != nullptr) cudaFreeHost(l.host);
    if (l.copied != nullptr) cudaEventDestroy(l.copied);
  }
  for (HostStaging& h : host_staging_) {
    if (h.host != nullptr) cudaFreeHost(h.host);
    if (h.copied != nullptr) cudaEventDestroy(h.copied);
  }
  if (stream_ != nullptr) cudaStreamDestroy(stream_);
  // allocator_ lives on while tensors from it do; its last owner frees it.
}

void CudaBackend::RequireDevice(const char* op, std::initializer_list<const Tensor*> tensors) {
  for (const Tensor* t : tensors) {
    if (t->raw() != nullptr && t->device() != Device::kCuda)
      Die(op, "tensor " + t->DebugString() + " is not on the GPU");
  }
}

StatusOr<Tensor> CudaBackend::TryAllocate(const Shape& shape, DType dtype) {
  const size_t bytes = DTypeBytes(dtype, static_cast<size_t>(NumElements(shape)));
  BATON_ASSIGN_OR_RETURN(std::shared_ptr<void> owner,
                         allocator_->Allocate(bytes, std::string(DTypeName(dtype)) + ShapeToString(shape) + " (" +
                                                         std::to_string(bytes) + " bytes)"));
  void* data = owner.get();
  return Tensor::View(std::move(owner), data, shape, dtype, Device::kCuda);
}

Status CudaBackend::Synchronize() {
  BATON_CUDA_CHECK(cudaStreamSynchronize(stream_));
  BATON_CUDA_CHECK(cudaGetLastError());
  return Status::Ok();
}

Tensor CudaBackend::Allocate(const Shape& shape, DType dtype) {
  StatusOr<Tensor> t = TryAllocate(shape, dtype);
  if (!t.ok()) Die("Allocate", t.status().ToString());
  return std::move(t).value();
}

Tensor CudaBackend::Upload(const Tensor& host, DType dtype) {
  const bool convert = host.dtype() != dtype;
  if (convert && !(IsFloatDType(host.dtype()) && IsFloatDType(dtype))) {
    Die("Upload", std::string("cannot convert ") + DTypeName(host.dtype()) + " to " + DTypeName(dtype));
  }
  const cudaMemcpyKind kind = host.device() == Device::kCuda ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice;
  Tensor out = Allocate(host.shape(), dtype);
  if (host.numel() == 0) return out;
  // Pageable host memory: cudaMemcpyAsync returns once the bytes are staged,
  // so `host` may go away as soon as this returns.
  if (!convert) {
    BATON_CUDA_OR_DIE("Upload", cudaMemcpyAsync(out.raw(), host.raw(), host.nbytes(), kind, stream_));
    return out;
  }
  Tensor staged = Allocate(host.shape(), host.dtype());
  BATON_CUDA_OR_DIE("Upload", cudaMemcpyAsync(staged.raw(), host.raw(), host.nbytes(), kind, stream_));
  cuda::LaunchConvert(staged.raw(), host.dtype(), out.raw(), dtype, host.numel(), stream_);
  return out;  // `staged` returns to the cache; only later work on stream_ can reuse it
}

Tensor CudaBackend::ToHostF32(const Tensor& t) {
  if (!IsFloatDType(t.dtype())) Die("ToHostF32", "tensor " + t.DebugString() + " is not a float type");
  if (t.device() == Device::kCpu) return t.dtype() == DType::kF32 ? t : t.ToF32();
  Tensor f32 = t;
  if (t.dtype() != DType::kF32) {
    f32 = Allocate(t.shape(), DType::kF32);
    cuda::LaunchConvert(t.raw(), t.dtype(), f32.raw(), DType::kF32, t.numel(), stream_);
  }
  Tensor host = Tensor::Empty(t.shape(), DType::kF32);
  if (t.numel() > 0) {
    BATON_CUDA_OR_DIE("ToHostF32",
                      cudaMemcpyAsync(host.raw(), f32.raw(), host.nbytes(), cudaMemcpyDeviceToHost, stream_));
  }
  DieIfError(Synchronize(), "ToHostF32");
  return host;
}

void CudaBackend::Embedding(const Tensor& ids, const Tensor& table, Tensor& out) {
  RequireDevice("Embedding", {&ids, &table, &out});
  cuda::LaunchEmbedding(ids, table, out, /*accumulate=*/false, stream_);
}

void CudaBackend::AddEmbedding(const Tensor& ids, const Tensor& table, Tensor& x) {
  RequireDevice("AddEmbedding", {&ids, &table, &x});
  cuda::LaunchEmbedding(ids, table, x, /*accumulate=*/true, stream_);
}

void CudaBackend::Linear(const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& y) {
  RequireDevice("Linear", {&x, &w, &bias, &y});
  cuda::RunLinear(cublas_, x, w, bias, y, gemv_, stream_);
}

void CudaBackend::FusedLinear(const Tensor& x, const Tensor& w, const Tensor& bias, const LinearStep& step,
                              Tensor& normed, Tensor& staging, Tensor& out) {
  const Tensor* norm = step.norm_weight;
  const bool has_bias = bias.defined() && bias.numel() > 0;
  if (decode_fusions_) {
    // A few rows: the GEMV takes an RMSNorm (its weight 16-byte aligned) and
    // any epilogue.
    const bool rms_or_none = norm == nullptr || (step.norm == NormOp::kRmsNorm && norm->device() == Device::kCuda &&
                                                 reinterpret_cast<uintptr_t>(norm->raw()) % 16 == 0);
    if (gemv_ && rms_or_none && x.dim(0) > 0 && x.dim(1) > 0 && cuda::GemvApplies(x, w)) {
      RequireDevice("FusedLinear", {&x, &w, &bias, &out});
      cuda::GemvFusion fusion;
      fusion.rms_weight = norm;
      fusion.rms_eps = step.norm_eps;
      fusion.epilogue = step.epilogue;
      cuda::LaunchGemv(x, w, bias, out, stream_, fusion);
      return;
    }
    // More rows: a residual add is the GEMM's beta = 1 onto out.
    if (norm == nullptr && step.epilogue == LinearEpilogue::kAccumulate && !has_bias) {
      RequireDevice("FusedLinear", {&x, &w, &out});
      cuda::RunLinear(cublas_, x, w, bias, out, gemv_, stream_, /*accumulate=*/true);
      return;
    }
  }
  Backend::FusedLinear(x, w, bias, step, normed, staging, out);
}

void CudaBackend::LayerNorm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps, Tensor& y) {
  RequireDevice("LayerNorm", {&x, &weight, &bias, &y});
  cuda::LaunchLayerNorm(x, weight, bias, eps, y, stream_);
}

void CudaBackend::RmsNorm(const Tensor& x, const Tensor& weight, float eps, Tensor& y) {
  RequireDevice("RmsNorm", {&x, &weight, &y});
  cuda::LaunchRmsNorm(x, weight, eps, y, stream_);
}

void CudaBackend::AddInPlace(Tensor& x, const Tensor& y) {
  RequireDevice("AddInPlace", {&x, &y});
  cuda::LaunchAddInPlace(x, y, stream_);
}

void CudaBackend::AddNorm(NormOp op, const Tensor& x, Tensor& residual, const Tensor& weight, const Tensor& bias,
                          float eps, Tensor& normed) {
  if (!fused_add_norm_) {
    Backend::AddNorm(op, x, residual, weight, bias, eps, normed);
    return;
  }
  RequireDevice("AddNorm", {&x, &residual, &weight, &bias, &normed});
  cuda::LaunchAddNorm(op, x, residual, weight, bias, eps, normed, stream_);
}

void CudaBackend::Rope(Tensor& qkv, const Tensor& positions, const Tensor& inv_freq, int num_heads, int num_kv_heads,
                       int head_dim) {
  RequireDevice("Rope", {&qkv, &positions, &inv_freq});
  cuda::LaunchRope(qkv, positions, inv_freq, num_heads, num_kv_heads, head_dim, stream_);
}

void CudaBackend::RopeStoreKv(Tensor& qkv, const Tensor& positions, const Tensor& inv_freq,
                              const PagedAttentionBatch& batch, const AttentionShape& shape, Tensor& cache_k,
                              Tensor& cache_v) {
  if (!decode_fusions_) {
    Backend::RopeStoreKv(qkv, positions, inv_freq, batch, shape, cache_k, cache_v);
    return;
  }
  RequireDevice("RopeStoreKv", {&qkv, &positions, &inv_freq, &batch.slot_mapping, &cache_k, &cache_v});
  cuda::LaunchRopeStoreKv(qkv, positions, inv_freq, batch, shape, cache_k, cache_v, stream_);
}

void CudaBackend::GeluNew(Tensor& x) {
  RequireDevice("GeluNew", {&x});
  cuda::LaunchGeluNew(x, stream_);
}

void CudaBackend::SwiGlu(const Tensor& gate_up, Tensor& out) {
  RequireDevice("SwiGlu", {&gate_up, &out});
  cuda::LaunchSwiGlu(gate_up, out, stream_);
}

void CudaBackend::StoreKv(const Tensor& qkv, const PagedAttentionBatch& batch, const AttentionShape& shape,
                          Tensor& cache_k, Tensor& cache_v) {
  RequireDevice("StoreKv", {&qkv, &batch.slot_mapping, &cache_k, &cache_v});
  cuda::LaunchStoreKv(qkv, batch, shape, cache_k, cache_v, stream_);
}

void CudaBackend::PagedAttention(const Tensor& qkv, const Tensor& cache_k, const Tensor& cache_v,
                                 const PagedAttentionBatch& batch, const AttentionShape& shape, Tensor& out) {
  RequireDevice("PagedAttention",
                {&qkv, &cache_k, &cache_v, &batch.query_start, &batch.context_len, &batch.block_tables, &out});
  if (decode_attention_ && cuda::DecodeAttentionSupported(qkv, cache_k, cache_v, batch, shape)) {
    RunDecodeAttention(qkv, cache_k, cache_v, batch, shape, out, nullptr);
    return;
  }
  if (fresh_prefill_ && !batch.fresh_query_start.empty() && cuda::FlashAttentionSupported(qkv, shape)) {
    // Every key is in qkv: the fused FlashAttention-2 forward of training
    // reads it there (tensor cores, 128-row tiles) instead of the paged
    // prefill kernel gathering it back from the cache.
    DieIfError(cuda::RunFlashAttentionForward(qkv, batch.fresh_query_start, shape, out, nullptr, stream_),
               "PagedAttention");
    return;
  }
  const cuda::AttentionPlan plan = cuda::PlanPagedAttention(qkv.dim(0), batch, shape, multiprocessors_);
  EnsureAttentionScratch(plan.workspace_floats, 0);
  float* workspace = plan.num_splits > 1 ? static_cast<float*>(attention_workspace_.raw()) : nullptr;
  cuda::LaunchPagedAttention(qkv, cache_k, cache_v, batch, shape, plan, workspace, out, stream_);
}

void CudaBackend::RunDecodeAttention(const Tensor& qkv, const Tensor& cache_k, const Tensor& cache_v,
                                     const PagedAttentionBatch& batch, const AttentionShape& shape, Tensor& out,
                                     const cuda::DecodeRope* rope) {
  const cuda::DecodeAttentionPlan plan =
      cuda::PlanDecodeAttention(qkv.dim(0), batch, shape, multiprocessors_, decode_split_keys_);
  EnsureAttentionScratch(plan.workspace_floats, plan.counters);
  const bool split = plan.num_splits > 1;
  cuda::LaunchDecodeAttention(qkv, cache_k, cache_v, batch, shape, plan,
                              split ? static_cast<float*>(attention_workspace_.raw()) : nullptr,
                              split ? static_cast<int*>(attention_counters_.raw()) : nullptr, out, stream_, rope);
}

void CudaBackend::RopeAttention(Tensor& qkv, const Tensor& positions, const Tensor& inv_freq,
                                const PagedAttentionBatch& batch, const AttentionShape& shape, Tensor& cache_k,
                                Tensor& cache_v, Tensor& out) {
  if (decode_fusions_ && decode_attention_ && cuda::DecodeAttentionSupported(qkv, cache_k, cache_v, batch, shape)) {
    RequireDevice("RopeAttention", {&qkv, &positions, &inv_freq, &cache_k, &cache_v, &batch.query_start,
                                    &batch.context_len, &batch.block_tables, &batch.slot_mapping, &out});
    const cuda::DecodeRope rope{positions, inv_freq, &cache_k, &cache_v};
    RunDecodeAttention(qkv, cache_k, cache_v, batch, shape, out, &rope);
    return;
  }
  Backend::RopeAttention(qkv, positions, inv_freq, batch, shape, cache_k, cache_v, out);
}

void CudaBackend::EnsureAttentionScratch(int64_t floats, int64_t counters) {
  // Grown, never shrunk: an old buffer goes back to the cache, and work
  // already queued on stream_ finishes before anything reuses it. Graphs
  // that point at the old one are stale from now on.
  const bool grow_floats =
      floats > 0 && (attention_workspace_.raw() == nullptr || floats > attention_workspace_.numel());
  const bool grow_counters =
      counters > 0 && (attention_counters_.raw() == nullptr || counters > attention_counters_.numel());
  if (!grow_floats && !grow_counters) return;
  if (capturing_) Die("PagedAttention", "workspace must grow while a graph is recorded (run the step eagerly first)");
  if (grow_floats) attention_workspace_ = Allocate({floats}, DType::kF32);
  if (grow_counters) {
    attention_counters_ = Allocate({counters}, DType::kI32);
    BATON_CUDA_OR_DIE("PagedAttention",
                      cudaMemsetAsync(attention_counters_.raw(), 0, attention_counters_.nbytes(), stream_));
  }
  ++scratch_generation_;
}

void CudaBackend::GatherRows(const Tensor& x, const Tensor& rows, Tensor& out) {
  RequireDevice("GatherRows", {&x, &rows, &out});
  cuda::LaunchGatherRows(x, rows, out, stream_);
}

void CudaBackend::SampleTokens(const Tensor& logits, const SampleBatch& batch, std::vector<int32_t>& tokens) {
  RequireDevice("SampleTokens", {&logits});
  const int64_t rows = static_cast<int64_t>(batch.rows.size());
  if (logits.ndim() != 2 || logits.dim(0) != rows) {
    Die("SampleTokens", "logits " + logits.DebugString() + " for " + std::to_string(rows) + " rows");
  }
  tokens.assign(static_cast<size_t>(rows), kSampleOnHost);
  if (rows == 0) return;
  const bool all_greedy = std::all_of(batch.rows.begin(), batch.rows.end(), [](const SampleRow& r) {
    return r.temperature == 0.0f && r.repetition_penalty == 1.0f;
  });
  if (all_greedy) {
    TokenTicket ticket;
    StartGreedyTokens(logits, ticket);
    FinishTokens(ticket, tokens);
    return;
  }
  Tensor out = Allocate({rows}, DType::kI32);
  const size_t work = cuda::SampleTokensWorkspaceBytes(rows, logits.dim(1));
  if (sampling_workspace_.raw() == nullptr || work > sampling_workspace_.nbytes()) {
    sampling_workspace_ = Allocate({static_cast<int64_t>(work)}, DType::kI8);
  }
  const size_t param_bytes = batch.rows.size() * sizeof(SampleRow);
  Tensor params = Allocate({static_cast<int64_t>(param_bytes)}, DType::kI8);
  BATON_CUDA_OR_DIE("SampleTokens",
                    cudaMemcpyAsync(params.raw(), batch.rows.data(), param_bytes, cudaMemcpyHostToDevice, stream_));
  Tensor context;
  if (!batch.context.empty()) {
    context = Allocate({static_cast<int64_t>(batch.context.size())}, DType::kI32);
    BATON_CUDA_OR_DIE("SampleTokens", cudaMemcpyAsync(context.raw(), batch.context.data(), context.nbytes(),
                                                      cudaMemcpyHostToDevice, stream_));
  }
  cuda::LaunchSampleTokens(logits, static_cast<const SampleRow*>(params.raw()),
                           static_cast<const int32_t*>(context.raw()), sampling_workspace_.raw(), out.data<int32_t>(),
                           stream_);
  CopyTokensToHost(out, tokens);
}

void CudaBackend::CopyTokensToHost(const Tensor& ids, std::vector<int32_t>& tokens) {
  BATON_CUDA_OR_DIE("SampleTokens",
                    cudaMemcpyAsync(tokens.data(), ids.raw(), ids.nbytes(), cudaMemcpyDeviceToHost, stream_));
  DieIfError(Synchronize(), "SampleTokens");
}

void CudaBackend::StartGreedyTokens(const Tensor& logits, TokenTicket& ticket) {
  RequireDevice("StartGreedyTokens", {&logits});
  if (logits.ndim() != 2) Die("StartGreedyTokens", "logits " + logits.DebugString() + " are not [rows, vocab]");
  const int64_t rows = logits.dim(0);
  const int index = next_landing_;
  TokenLanding& landing = token_landings_[static_cast<size_t>(index)];
  if (landing.held) Die("StartGreedyTokens", "more tickets outstanding than landing places");
  next_landing_ = (next_landing_ + 1) % static_cast<int>(token_landings_.size());
  if (landing.capacity < rows) {
    if (landing.host != nullptr) BATON_CUDA_OR_DIE("StartGreedyTokens", cudaFreeHost(landing.host));
    landing.host = nullptr;
    void* host = nullptr;
    BATON_CUDA_OR_DIE("StartGreedyTokens", cudaMallocHost(&host, static_cast<size_t>(rows) * sizeof(int32_t)));
    landing.host = static_cast<int32_t*>(host);
    landing.capacity = rows;
  }
  if (landing.copied == nullptr) {
    BATON_CUDA_OR_DIE("StartGreedyTokens", cudaEventCreateWithFlags(&landing.copied, cudaEventDisableTiming));
  }
  ticket.ids = Allocate({rows}, DType::kI32);
  if (rows > 0) {
    cuda::LaunchGreedyTokens(logits, ticket.ids.data<int32_t>(), stream_);
    BATON_CUDA_OR_DIE("StartGreedyTokens", cudaMemcpyAsync(landing.host, ticket.ids.raw(), ticket.ids.nbytes(),
                                                           cudaMemcpyDeviceToHost, stream_));
  }
  BATON_CUDA_OR_DIE("StartGreedyTokens", cudaEventRecord(landing.copied, stream_));
  landing.held = true;
  ticket.slot = index;
}

// Tickets of step landings are numbered after token_landings_.
void CudaBackend::FinishTokens(TokenTicket& ticket, std::vector<int32_t>& tokens) {
  const int landings = static_cast<int>(token_landings_.size());
  if (ticket.slot >= landings && step_io_ != nullptr) {
    step_io_->FinishLanding(ticket.slot - landings, tokens);
    ticket.slot = -1;
    return;
  }
  if (ticket.slot < 0 || ticket.slot >= landings || !token_landings_[static_cast<size_t>(ticket.slot)].held) {
    Die("FinishTokens", "a ticket StartGreedyTokens did not give, or finished twice");
  }
  TokenLanding& landing = token_landings_[static_cast<size_t>(ticket.slot)];
  BATON_CUDA_OR_DIE("FinishTokens", cudaEventSynchronize(landing.copied));
  tokens.assign(landing.host, landing.host + ticket.ids.numel());
  landing.held = false;
  ticket.slot = -1;
}

Tensor CudaBackend::NextStepInputs(int64_t count, int64_t first, int64_t token_rows) {
  if (step_io_ == nullptr) step_io_ = std::make_unique<cuda::StepHostIo>(stream_);
  bool moved = false;
  Tensor host = step_io_->Next(count, first, token_rows, moved);
  if (moved) ++scratch_generation_;
  return host;
}

void CudaBackend::FetchStepInputs(Tensor& device) {
  RequireDevice("FetchStepInputs", {&device});
  if (step_io_ == nullptr) Die("FetchStepInputs", "no inputs were given (NextStepInputs)");
  step_io_->Fetch(device);
}

void CudaBackend::StepGreedyTokens(const Tensor& logits, Tensor& ids) {
  RequireDevice("StepGreedyTokens", {&logits, &ids});
  if (logits.ndim() != 2 || ids.dtype() != DType::kI32 || ids.numel() != logits.dim(0)) {
    Die("StepGreedyTokens",
        "logits " + logits.DebugString() + " and ids " + ids.DebugString() + " are not [rows, vocab] and [rows] I32");
  }
  if (step_io_ == nullptr) Die("StepGreedyTokens", "no inputs were given (NextStepInputs)");
  cuda::LaunchGreedyTokens(logits, ids.data<int32_t>(), stream_, step_io_->Landings());
}

void CudaBackend::StartStepTokens(const Tensor& ids, TokenTicket& ticket) {
  RequireDevice("StartStepTokens", {&ids});
  if (step_io_ == nullptr) Die("StartStepTokens", "no inputs were given (NextStepInputs)");
  ticket.ids = ids;
  ticket.slot = static_cast<int>(token_landings_.size()) + step_io_->TakeLanding(ids.numel());
}

void CudaBackend::CopyToDevice(const Tensor& source, Tensor& device) {
  RequireDevice("CopyToDevice", {&device});
  if (source.dtype() != device.dtype() || source.numel() != device.numel()) {
    Die("CopyToDevice", "source " + source.DebugString() + " does not fit " + device.DebugString());
  }
  const size_t bytes = source.nbytes();
  if (bytes == 0) return;
  if (source.device() == Device::kCuda || bytes > kStagedCopyMaxBytes) {
    const cudaMemcpyKind kind = source.device() == Device::kCuda ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice;
    BATON_CUDA_OR_DIE("CopyToDevice", cudaMemcpyAsync(device.raw(), source.raw(), bytes, kind, stream_));
    return;
  }
  HostStaging& staging = host_staging_[static_cast<size_t>(next_staging_)];
  next_staging_ = (next_staging_ + 1) % static_cast<int>(host_staging_.size());
  if (staging.copied == nullptr) {
    BATON_CUDA_OR_DIE("CopyToDevice", cudaEventCreateWithFlags(&staging.copied, cudaEventDisableTiming));
  } else {
    BATON_CUDA_OR_DIE("CopyToDevice", cudaEventSynchronize(staging.copied));  // its last copy has read it
  }
  if (staging.capacity < bytes) {
    if (staging.host != nullptr) BATON_CUDA_OR_DIE("CopyToDevice", cudaFreeHost(staging.host));
    staging.host = nullptr;
    BATON_CUDA_OR_DIE("CopyToDevice", cudaMallocHost(&staging.host, bytes));
    staging.capacity = bytes;
  }
  std::memcpy(staging.host, source.raw(), bytes);
  BATON_CUDA_OR_DIE("CopyToDevice",
                    cudaMemcpyAsync(device.raw(), staging.host, bytes, cudaMemcpyHostToDevice, stream_));
  BATON_CUDA_OR_DIE("CopyToDevice", cudaEventRecord(staging.copied, stream_));
}

void CudaBackend::BeginGraph() {
  if (capturing_) Die("BeginGraph", "a graph is already being recorded");
  BATON_CUDA_OR_DIE("BeginGraph", cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
  capturing_ = true;
}

int CudaBackend::EndGraph() {
  if (!capturing_) Die("EndGraph", "no graph is being recorded");
  capturing_ = false;
  cudaGraph_t graph = nullptr;
  BATON_CUDA_OR_DIE("EndGraph", cudaStreamEndCapture(stream_, &graph));
  cudaGraphExec_t exec = nullptr;
  const cudaError_t err = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  BATON_CUDA_OR_DIE("EndGraph", err);
  graphs_.push_back(exec);
  return static_cast<int>(graphs_.size()) - 1;
}

void CudaBackend::RunGraph(int graph) {
  if (graph < 0 || static_cast<size_t>(graph) >= graphs_.size() || graphs_[graph] == nullptr) {
    Die("RunGraph", "no graph " + std::to_string(graph));
  }
  BATON_CUDA_OR_DIE("RunGraph", cudaGraphLaunch(graphs_[graph], stream_));
}

void CudaBackend::DropGraphs() {
  if (!graphs_.empty() && stream_ != nullptr) cudaStreamSynchronize(stream_);  // none may still be running
  for (cudaGraphExec_t& g : graphs_) {
    if (g != nullptr) cudaGraphExecDestroy(g);
    g = nullptr;
  }
  graphs_.clear();
}

}  // namespace baton
