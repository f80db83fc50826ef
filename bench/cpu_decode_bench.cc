// Batch-1 decode speed on the CPU next to this machine's memory-bandwidth
// floor. Each decoded token reads every weight once, so tokens/s can be no
// more than bandwidth / weight bytes; the report gives the fraction reached.
//
//   bench_cpu_decode [--model DIR | --shape gpt2-124m] [--new-tokens 64]
// Prints one JSON object.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "bench/memory_bandwidth.h"
#include "runtime/checkpoint/random_checkpoint.h"
#include "runtime/serving/generator.h"
#include "stages/model_session.h"

namespace baton::bench {
namespace {

using Clock = std::chrono::steady_clock;

StatusOr<std::string> EnsureModel(const std::string& model, const std::string& shape) {
  if (!model.empty()) return model;
  const std::string dir = (std::filesystem::temp_directory_path() / ("baton-bench-" + shape)).string();
  if (std::filesystem::exists(dir + "/model.safetensors")) return dir;
  RandomCheckpointOptions options;
  BATON_ASSIGN_OR_RETURN(options.config, BuiltinModelConfig(shape));
  options.dtype = DType::kF32;
  options.out_dir = dir;
  BATON_RETURN_IF_ERROR(WriteRandomCheckpoint(options));
  return dir;
}

struct DecodeTiming {
  double prefill_s = 0;
  double decode_tokens_per_s = 0;
};

StatusOr<DecodeTiming> TimeDecode(ModelSession& session, int prompt_tokens, int new_tokens) {
  GenerationRequest request;
  for (int i = 0; i < prompt_tokens; ++i) request.prompt_ids.push_back(1 + (i * 37) % 1000);
  request.max_new_tokens = new_tokens;
  request.sampling.temperature = 0;
  request.ignore_eos = true;
  std::vector<Clock::time_point> stamps;
  Generator generator(session.runner(), nullptr, session.blocks());
  const auto start = Clock::now();
  BATON_ASSIGN_OR_RETURN(auto results, generator.Generate({request}, [&](size_t, int32_t, const std::string&) {
    stamps.push_back(Clock::now());
  }));
  DecodeTiming t;
  t.prefill_s = std::chrono::duration<double>(stamps.front() - start).count();
  t.decode_tokens_per_s = (stamps.size() - 1) / std::chrono::duration<double>(stamps.back() - stamps.front()).count();
  return t;
}

Status Run(const std::string& model_flag, const std::string& shape, int prompt_tokens, int new_tokens, int repeats,
           int threads) {
  BATON_ASSIGN_OR_RETURN(std::string model, EnsureModel(model_flag, shape));
  SessionOptions options;
  options.model_dir = model;
  options.threads = threads;
  options.kv_cache_bytes = size_t{64} << 20;
  BATON_ASSIGN_OR_RETURN(auto session, ModelSession::Open(options));
  const MemoryBandwidth bw = MeasureMemoryBandwidth(size_t{1} << 30, 5);
  std::vector<DecodeTiming> runs;
  for (int r = 0; r < repeats; ++r) {
    BATON_ASSIGN_OR_RETURN(DecodeTiming t, TimeDecode(*session, prompt_tokens, new_tokens));
    runs.push_back(t);
  }
  std::sort(runs.begin(), runs.end(),
            [](const DecodeTiming& a, const DecodeTiming& b) { return a.decode_tokens_per_s < b.decode_tokens_per_s; });
  const DecodeTiming& median = runs[runs.size() / 2];
  const double weight_bytes = static_cast<double>(session->stage().weight_bytes());
  const double floor_copy = bw.copy_gbs * 1e9 / weight_bytes;
  nlohmann::json out = {
      {"bench", "cpu_decode"},
      {"model", model_flag.empty() ? shape : model},
      {"dtype", "f32"},
      {"threads", threads},
      {"prompt_tokens", prompt_tokens},
      {"new_tokens", new_tokens},
      {"weight_bytes", weight_bytes},
      {"copy_bandwidth_gbs", bw.copy_gbs},
      {"floor_tokens_per_s", floor_copy},
      {"decode_tokens_per_s", median.decode_tokens_per_s},
      {"fraction_of_floor", median.decode_tokens_per_s / floor_copy},
      {"prefill_ms", median.prefill_s * 1e3},
  };
  std::printf("%s\n", out.dump(1).c_str());
  return Status::Ok();
}

}  // namespace
}  // namespace baton::bench

int main(int argc, char** argv) {
  CLI::App app{"Batch-1 CPU decode against the memory-bandwidth floor"};
  std::string model, shape = "gpt2-124m";
  int prompt_tokens = 16, new_tokens = 64, repeats = 3, threads = 0;
  app.add_option("--model", model, "Model folder (default: a random --shape model in the temp dir)");
  app.add_option("--shape", shape, "Built-in shape for the random model")->capture_default_str();
  app.add_option("--prompt-tokens", prompt_tokens)->capture_default_str();
  app.add_option("--new-tokens", new_tokens)->capture_default_str();
  app.add_option("--repeats", repeats)->capture_default_str();
  app.add_option("--threads", threads, "0: all cores");
  CLI11_PARSE(app, argc, argv);
  const baton::Status st = baton::bench::Run(model, shape, prompt_tokens, new_tokens, std::max(repeats, 1), threads);
  if (!st.ok()) {
    std::fprintf(stderr, "bench_cpu_decode: %s\n", st.ToString().c_str());
    return st.ExitCode();
  }
  return 0;
}
