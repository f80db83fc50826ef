// One core's matmul speed on GPT-2-124M's linear shapes, for the row counts
// decode and prefill give: Baton's panel-packed matmul against OpenBLAS's
// sgemm (sgemv at one row) on the same weights, in the same run. The weights
// of a stage (24 of them here, 226 MB) stream from memory as in a real step.
//
//   bench_cpu_matmul [--rows 1,4,16,32,64,256] [--repeats 5]
// Prints one JSON object. Pin it to one core (taskset -c 0) with
// OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 for one-core figures.
#include <cblas.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>
#include <vector>

#include "runtime/backend/cpu/panel_matmul.h"

namespace baton::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct LinearShape {
  int64_t out, in;
};

// GPT-2-124M's four linears of a layer: qkv, attention out, fc, proj.
constexpr LinearShape kLayerShapes[] = {{2304, 768}, {768, 768}, {3072, 768}, {768, 3072}};
constexpr int kLayers = 12;

Tensor RandomWeight(const LinearShape& s, std::mt19937& gen) {
  Tensor t = Tensor::Empty({s.out, s.in}, DType::kF32);
  std::uniform_real_distribution<float> dist(-0.05f, 0.05f);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = dist(gen);
  return t;
}

// Best of `repeats` passes over every weight, in GFLOP/s.
template <typename Pass>
double BestGflops(double flops, int repeats, Pass pass) {
  double best = 0;
  for (int r = 0; r < repeats; ++r) {
    const auto start = Clock::now();
    pass();
    const double s = std::chrono::duration<double>(Clock::now() - start).count();
    best = std::max(best, flops / s / 1e9);
  }
  return best;
}

int Main(int argc, char** argv) {
  CLI::App app{"CPU matmul: panel-packed weights against OpenBLAS"};
  std::vector<int64_t> rows_list{1, 4, 16, 32, 64, 256};
  int repeats = 5;
  app.add_option("--rows", rows_list, "Rows of x (tokens in the step)")->delimiter(',');
  app.add_option("--repeats", repeats, "Passes per measurement (best is kept)");
  CLI11_PARSE(app, argc, argv);

  std::mt19937 gen(1);
  std::vector<Tensor> plain, packed;
  double weight_bytes = 0;
  for (int l = 0; l < kLayers; ++l) {
    for (const LinearShape& s : kLayerShapes) {
      plain.push_back(RandomWeight(s, gen));
      packed.push_back(PackPanels(plain.back()));
      weight_bytes += static_cast<double>(plain.back().nbytes());
    }
  }
  nlohmann::json out{{"bench", "cpu_matmul"}, {"shape", "gpt2-124m layers"}, {"weight_bytes", weight_bytes},
                     {"results", nlohmann::json::array()}};
  for (const int64_t m : rows_list) {
    const int64_t max_in = 3072;
    std::vector<float> x(m * max_in, 0.5f), y(m * 3072);
    double flops = 0;
    for (const Tensor& w : plain) flops += 2.0 * m * w.dim(0) * w.dim(1);
    const double blas = BestGflops(flops, repeats, [&] {
      for (const Tensor& w : plain) {
        const int64_t n = w.dim(0), k = w.dim(1);
        if (m == 1) {
          cblas_sgemv(CblasRowMajor, CblasNoTrans, n, k, 1.0f, w.data<float>(), k, x.data(), 1, 0.0f, y.data(), 1);
        } else {
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, x.data(), k, w.data<float>(), k, 0.0f,
                      y.data(), n);
        }
      }
    });
    const double panels = BestGflops(flops, repeats, [&] {
      for (const Tensor& w : packed) PanelMatmul(x.data(), m, w, y.data(), 1);
    });
    out["results"].push_back(
        {{"rows", m}, {"openblas_gflops", blas}, {"panels_gflops", panels}, {"panels_over_openblas", panels / blas}});
  }
  std::printf("%s\n", out.dump(1).c_str());
  return 0;
}

}  // namespace
}  // namespace baton::bench

int main(int argc, char** argv) { return baton::bench::Main(argc, argv); }
