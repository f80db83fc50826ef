// gpu_op_timings: median times of the main CUDA ops on bf16 at Llama-3-8B
// shapes, with the bandwidth or FLOP rate each reaches. Not a test: a
// measurement to compare against the ceilings in ../shared/GPU.md.
// Usage: gpu_op_timings [json_out]
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "runtime/backend/cuda/cuda_backend.h"
#include "runtime/backend/cuda/device_info.h"
#include "runtime/backend/cuda/make_cuda_backend.h"

namespace baton {
namespace {

Tensor Random(CudaBackend& gpu, const Shape& shape, std::mt19937& rng, float scale = 1.0f) {
  Tensor h = Tensor::Empty(shape, DType::kF32);
  std::uniform_real_distribution<float> d(-scale, scale);
  for (int64_t i = 0; i < h.numel(); ++i) h.data<float>()[i] = d(rng);
  return gpu.Upload(h, gpu.compute_dtype());
}

Tensor I32(CudaBackend& gpu, const std::vector<int32_t>& v) {
  Tensor h = Tensor::Empty({static_cast<int64_t>(v.size())}, DType::kI32);
  std::copy(v.begin(), v.end(), h.data<int32_t>());
  return gpu.Upload(h, DType::kI32);
}

// Median milliseconds of `fn` over `reps` runs, after 3 warm-up runs.
double TimeMs(CudaBackend& gpu, const std::function<void()>& fn, int reps = 20) {
  for (int i = 0; i < 3; ++i) fn();
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  std::vector<float> ms;
  for (int i = 0; i < reps; ++i) {
    cudaEventRecord(a, gpu.stream());
    fn();
    cudaEventRecord(b, gpu.stream());
    cudaEventSynchronize(b);
    float t = 0;
    cudaEventElapsedTime(&t, a, b);
    ms.push_back(t);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

struct Row {
  std::string name;
  double ms, rate;
  const char* unit;
};

// A batch of `seqs` sequences each with `q_len` new tokens and `ctx` cached.
struct AttnSetup {
  PagedAttentionBatch batch;
  AttentionShape shape;
  Tensor qkv, k, v, out;
};

AttnSetup MakeAttn(CudaBackend& gpu, std::mt19937& rng, int seqs, int q_len, int ctx) {
  AttnSetup s;
  s.shape = {32, 8, 128, 16, 1.0f / std::sqrt(128.0f), 0};
  const int blocks_per = (ctx + 15) / 16;
  std::vector<int32_t> qs = {0}, cl, table, slots;
  for (int i = 0; i < seqs; ++i) {
    for (int b = 0; b < blocks_per; ++b) table.push_back(i * blocks_per + b);
    for (int t = 0; t < q_len; ++t) slots.push_back(i * blocks_per * 16 + ctx - q_len + t);
    qs.push_back(qs.back() + q_len);
    cl.push_back(ctx);
  }
  s.batch.query_start = I32(gpu, qs);
  s.batch.context_len = I32(gpu, cl);
  s.batch.block_tables = I32(gpu, table).Reshape({seqs, blocks_per});
  s.batch.slot_mapping = I32(gpu, slots);
  s.batch.num_seqs = seqs;
  s.batch.max_query_len = q_len;
  s.batch.max_context_len = ctx;
  const int64_t n = static_cast<int64_t>(seqs) * q_len;
  s.qkv = Random(gpu, {n, 48 * 128}, rng);
  s.k = Random(gpu, {static_cast<int64_t>(seqs) * blocks_per, 16, 8, 128}, rng);
  s.v = Random(gpu, {static_cast<int64_t>(seqs) * blocks_per, 16, 8, 128}, rng);
  s.out = gpu.Allocate({n, 32 * 128}, gpu.compute_dtype());
  return s;
}

int Main(int argc, char** argv) {
  if (cuda::VisibleDeviceCount() == 0) {
    std::printf("no CUDA GPU visible\n");
    return 0;
  }
  StatusOr<std::unique_ptr<Backend>> made = MakeCudaBackend(DType::kBF16, 0);
  if (!made.ok()) {
    std::fprintf(stderr, "%s\n", made.status().ToString().c_str());
    return 1;
  }
  CudaBackend& gpu = static_cast<CudaBackend&>(**made);
  std::mt19937 rng(1);
  std::vector<Row> rows;

  {
    // The bandwidth ceiling the memory-bound rows are compared with.
    const int64_t bytes = int64_t{1} << 30;
    Tensor a = gpu.Allocate({bytes}, DType::kI8), b = gpu.Allocate({bytes}, DType::kI8);
    const double ms = TimeMs(gpu, [&] {
      cudaMemcpyAsync(b.raw(), a.raw(), static_cast<size_t>(bytes), cudaMemcpyDeviceToDevice, gpu.stream());
    });
    rows.push_back({"device copy 1 GiB (read + write)", ms, 2.0 * bytes / ms / 1e6, "GB/s"});
  }
  for (int64_t m : {1, 32, 2048}) {
    Tensor x = Random(gpu, {m, 4096}, rng), w = Random(gpu, {14336, 4096}, rng, 0.02f);
    Tensor y = gpu.Allocate({m, 14336}, DType::kBF16);
    const double ms = TimeMs(gpu, [&] { gpu.Linear(x, w, Tensor(), y); });
    if (m < 64) {
      rows.push_back({"Linear M=" + std::to_string(m) + " K=4096 N=14336", ms, 2.0 * 14336 * 4096 / ms / 1e6, "GB/s"});
    } else {
      rows.push_back({"Linear M=2048 K=4096 N=14336", ms, 2.0 * m * 14336 * 4096 / ms / 1e9, "TFLOP/s"});
    }
  }
  {
    Tensor x = Random(gpu, {2048, 4096}, rng), w = Random(gpu, {4096}, rng),
           y = gpu.Allocate({2048, 4096}, DType::kBF16);
    const double ms = TimeMs(gpu, [&] { gpu.RmsNorm(x, w, 1e-5f, y); });
    rows.push_back({"RmsNorm [2048, 4096]", ms, 2.0 * 2 * 2048 * 4096 / ms / 1e6, "GB/s"});
    Tensor gu = Random(gpu, {2048, 2 * 14336}, rng), o = gpu.Allocate({2048, 14336}, DType::kBF16);
    const double ms2 = TimeMs(gpu, [&] { gpu.SwiGlu(gu, o); });
    rows.push_back({"SwiGlu [2048, 2x14336]", ms2, 2.0 * 3 * 2048 * 14336 / ms2 / 1e6, "GB/s"});
  }
  {
    // One decode row of the 8B shape: the residual add and the norm after
    // it, fused (AddNorm) and as the two ops it replaces.
    Tensor x = Random(gpu, {1, 4096}, rng), r = Random(gpu, {1, 4096}, rng), w = Random(gpu, {4096}, rng),
           y = gpu.Allocate({1, 4096}, DType::kBF16);
    const double fused = TimeMs(gpu, [&] { gpu.AddNorm(NormOp::kRmsNorm, x, r, w, Tensor(), 1e-5f, y); });
    rows.push_back({"AddNorm (rms) [1, 4096]", fused, 2.0 * 4 * 4096 / fused / 1e6, "GB/s"});
    const double pair = TimeMs(gpu, [&] {
      gpu.AddInPlace(r, x);
      gpu.RmsNorm(r, w, 1e-5f, y);
    });
    rows.push_back({"AddInPlace + RmsNorm [1, 4096]", pair, 2.0 * 4 * 4096 / pair / 1e6, "GB/s"});
  }
  for (int seqs : {1, 32}) {
    for (int ctx : {256, 1024, 4096}) {
      AttnSetup a = MakeAttn(gpu, rng, seqs, 1, ctx);
      const double ms = TimeMs(gpu, [&] { gpu.PagedAttention(a.qkv, a.k, a.v, a.batch, a.shape, a.out); });
      const double bytes = 2.0 * 2 * seqs * ctx * 8 * 128;  // K and V, bf16
      rows.push_back(
          {"decode attention B=" + std::to_string(seqs) + " ctx=" + std::to_string(ctx), ms, bytes / ms / 1e6, "GB/s"});
    }
  }
  for (int s_len : {1024, 2048}) {
    AttnSetup a = MakeAttn(gpu, rng, 1, s_len, s_len);
    const double ms = TimeMs(
        gpu, [&] { gpu.PagedAttention(a.qkv, a.k, a.v, a.batch, a.shape, a.out); }, 5);
    const double flops = 4.0 * 32 * 128 * (static_cast<double>(s_len) * s_len / 2);  // causal
    rows.push_back({"prefill attention S=" + std::to_string(s_len) + " H32/KV8 D128", ms, flops / ms / 1e9, "TFLOP/s"});
  }
  Status st = gpu.Synchronize();
  if (!st.ok()) {
    std::fprintf(stderr, "%s\n", st.ToString().c_str());
    return 1;
  }
  StatusOr<cuda::DeviceInfo> info = cuda::GetDeviceInfo(0);
  const std::string card = info.ok() ? info->name : "?";
  std::printf("%-44s %10s %10s\n", ("op (bf16, " + card + ")").c_str(), "ms", "rate");
  for (const Row& r : rows) std::printf("%-44s %10.4f %8.1f %s\n", r.name.c_str(), r.ms, r.rate, r.unit);
  if (argc > 1) {
    FILE* f = std::fopen(argv[1], "w");
    if (f != nullptr) {
      std::fprintf(f, "{\"card\": \"%s\", \"rows\": [\n", card.c_str());
      for (size_t i = 0; i < rows.size(); ++i) {
        std::fprintf(f, "  {\"op\": \"%s\", \"ms\": %.5f, \"rate\": %.2f, \"unit\": \"%s\"}%s\n", rows[i].name.c_str(),
                     rows[i].ms, rows[i].rate, rows[i].unit, i + 1 < rows.size() ? "," : "");
      }
      std::fprintf(f, "]}\n");
      std::fclose(f);
    }
  }
  return 0;
}

}  // namespace
}  // namespace baton

int main(int argc, char** argv) { return baton::Main(argc, argv); }
