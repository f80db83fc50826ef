// Baton's prefill attention (CudaBackend::PagedAttention on one causal
// prompt of S tokens with nothing cached) in TFLOP/s, to set beside torch
// SDPA (bench/gpu/hf_baseline.py) at the same shapes. "tflops" is the path
// a real prompt takes (the fused FlashAttention-2 forward over qkv);
// "paged_tflops" the paged prefill kernel, which reads K/V back through
// the cache as a prompt with a cached prefix or a later chunk does.
// FLOPs counted as causal: 4 * S^2 * H * D / 2 (QK^T and PV, half masked),
// the convention of FlashAttention's benchmarks.
//
//   bench_gpu_attention [--seq 1024,4096] [--heads 32] [--kv-heads 8] [--head-dim 128]
// Prints one JSON object.
#include <cuda_runtime_api.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>

#include "runtime/backend/cuda/cuda_backend.h"
#include "runtime/backend/cuda/cuda_check.h"
#include "runtime/backend/cuda/device_info.h"

namespace baton::bench {
namespace {

Tensor HostI32(const std::vector<int32_t>& v) {
  Tensor t = Tensor::Empty({static_cast<int64_t>(v.size())}, DType::kI32);
  std::copy(v.begin(), v.end(), t.data<int32_t>());
  return t;
}

// Median milliseconds of `iters` PagedAttention calls.
StatusOr<double> TimeAttention(CudaBackend& gpu, const Tensor& qkv, const Tensor& cache_k, const Tensor& cache_v,
                               const PagedAttentionBatch& batch, const AttentionShape& shape, Tensor& out, int iters) {
  for (int i = 0; i < 3; ++i) gpu.PagedAttention(qkv, cache_k, cache_v, batch, shape, out);
  cudaEvent_t start, stop;
  BATON_CUDA_CHECK(cudaEventCreate(&start));
  BATON_CUDA_CHECK(cudaEventCreate(&stop));
  std::vector<double> ms;
  for (int i = 0; i < iters; ++i) {
    BATON_CUDA_CHECK(cudaEventRecord(start, gpu.stream()));
    gpu.PagedAttention(qkv, cache_k, cache_v, batch, shape, out);
    BATON_CUDA_CHECK(cudaEventRecord(stop, gpu.stream()));
    BATON_CUDA_CHECK(cudaEventSynchronize(stop));
    float t = 0;
    BATON_CUDA_CHECK(cudaEventElapsedTime(&t, start, stop));
    ms.push_back(t);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  BATON_RETURN_IF_ERROR(gpu.Synchronize());
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

StatusOr<nlohmann::json> TimePrefill(CudaBackend& gpu, int s, int heads, int kv_heads, int d, int iters) {
  constexpr int kBlock = 16;
  const int64_t width = static_cast<int64_t>(heads + 2 * kv_heads) * d;
  std::mt19937 rng(s);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  Tensor host = Tensor::Empty({s, width}, DType::kF32);
  for (int64_t i = 0; i < host.numel(); ++i) host.data<float>()[i] = dist(rng);
  Tensor qkv = gpu.Upload(host, gpu.compute_dtype());
  const int blocks = (s + kBlock - 1) / kBlock;
  Tensor cache_k = gpu.Allocate({blocks, kBlock, kv_heads, d}, gpu.compute_dtype());
  Tensor cache_v = gpu.Allocate({blocks, kBlock, kv_heads, d}, gpu.compute_dtype());
  std::vector<int32_t> table(blocks), slots(s);
  for (int b = 0; b < blocks; ++b) table[b] = blocks - 1 - b;  // reversed: a real cache is not contiguous
  for (int i = 0; i < s; ++i) slots[i] = table[i / kBlock] * kBlock + i % kBlock;
  PagedAttentionBatch batch;
  batch.query_start = gpu.Upload(HostI32({0, s}), DType::kI32);
  batch.context_len = gpu.Upload(HostI32({s}), DType::kI32);
  batch.block_tables = gpu.Upload(HostI32(table).Reshape({1, blocks}), DType::kI32);
  batch.slot_mapping = gpu.Upload(HostI32(slots), DType::kI32);
  batch.num_seqs = 1;
  batch.max_query_len = s;
  batch.max_context_len = s;
  AttentionShape shape;
  shape.num_heads = heads;
  shape.num_kv_heads = kv_heads;
  shape.head_dim = d;
  shape.block_size = kBlock;
  shape.scale = 1.0f / std::sqrt(static_cast<float>(d));
  Tensor out = gpu.Allocate({s, static_cast<int64_t>(heads) * d}, gpu.compute_dtype());
  gpu.StoreKv(qkv, batch, shape, cache_k, cache_v);
  batch.fresh_query_start = {0, s};  // as UploadStepPlan sets it for a prompt with nothing cached
  BATON_ASSIGN_OR_RETURN(const double fresh_ms, TimeAttention(gpu, qkv, cache_k, cache_v, batch, shape, out, iters));
  batch.fresh_query_start.clear();
  BATON_ASSIGN_OR_RETURN(const double paged_ms, TimeAttention(gpu, qkv, cache_k, cache_v, batch, shape, out, iters));
  const double flops = 4.0 * s * static_cast<double>(s) * heads * d / 2;
  return nlohmann::json{{"seq", s},
                        {"ms", fresh_ms},
                        {"tflops", flops / (fresh_ms * 1e-3) / 1e12},
                        {"paged_ms", paged_ms},
                        {"paged_tflops", flops / (paged_ms * 1e-3) / 1e12}};
}

Status Run(const std::vector<int>& seqs, int heads, int kv_heads, int d, int iters) {
  BATON_ASSIGN_OR_RETURN(std::unique_ptr<CudaBackend> gpu, CudaBackend::Create(DType::kBF16, 0));
  BATON_ASSIGN_OR_RETURN(cuda::DeviceInfo info, cuda::GetDeviceInfo(0));
  nlohmann::json results = nlohmann::json::array();
  for (int s : seqs) {
    BATON_ASSIGN_OR_RETURN(nlohmann::json r, TimePrefill(*gpu, s, heads, kv_heads, d, iters));
    results.push_back(r);
  }
  nlohmann::json out = {{"bench", "gpu_prefill_attention"},
                        {"gpu", info.name},
                        {"dtype", "BF16"},
                        {"heads", heads},
                        {"kv_heads", kv_heads},
                        {"head_dim", d},
                        {"causal", true},
                        {"flops", "4*S^2*H*D/2"},
                        {"results", results}};
  std::printf("%s\n", out.dump(1).c_str());
  return Status::Ok();
}

}  // namespace
}  // namespace baton::bench

int main(int argc, char** argv) {
  CLI::App app{"Prefill attention kernel in TFLOP/s"};
  std::vector<int> seqs = {1024, 4096};
  int heads = 32, kv_heads = 8, head_dim = 128, iters = 20;
  app.add_option("--seq", seqs)->delimiter(',')->capture_default_str();
  app.add_option("--heads", heads)->capture_default_str();
  app.add_option("--kv-heads", kv_heads)->capture_default_str();
  app.add_option("--head-dim", head_dim)->capture_default_str();
  app.add_option("--iters", iters)->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  const baton::Status st = baton::bench::Run(seqs, heads, kv_heads, head_dim, std::max(iters, 1));
  if (!st.ok()) {
    std::fprintf(stderr, "bench_gpu_attention: %s\n", st.ToString().c_str());
    return st.ExitCode();
  }
  return 0;
}
