// Batch-1 decode speed on one GPU next to its bandwidth floor: each decoded
// token reads every weight once, so tokens/s is at most copy bandwidth /
// weight bytes (bandwidth measured in the same run). Optionally the
// time to first token of a long prompt, and a per-op GPU-time split of one
// decode step (cudaEvents around every Backend op).
//
//   bench_gpu_decode --model DIR [--dtype bf16] [--prompt-tokens 128] [--new-tokens 128]
//                    [--ttft-prompt 2048] [--profile]
// Runs the real path: ModelSession (weights, KV cache sized from free
// memory) and the Generator (scheduler, sampling on the GPU), prefix cache off so
// repeats recompute their prompts. Prints one JSON object. Decode steps
// replay CUDA graphs unless BATON_CUDA_GRAPHS=off (stages/stage.h); the
// --profile split always runs eagerly (its timing backend has no graphs).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "bench/gpu/device_copy.h"
#include "bench/gpu/op_timing_backend.h"
#include "runtime/backend/cuda/device_info.h"
#include "runtime/serving/generator.h"
#include "stages/model_session.h"

namespace baton::bench {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// Token ids that differ per run (no two runs share a prefix).
std::vector<int32_t> Prompt(int tokens, int run, int vocab) {
  std::vector<int32_t> ids;
  for (int i = 0; i < tokens; ++i) ids.push_back(1 + (i * 37 + run * 7919 + 13) % (vocab - 1));
  return ids;
}

struct Timing {
  double first_token_s = 0;  // request start -> first token (prefill + sampling)
  double decode_tokens_per_s = 0;
  double total_s = 0;
};

StatusOr<Timing> TimeGeneration(ModelSession& session, int prompt_tokens, int new_tokens, int run) {
  GenerationRequest request;
  request.prompt_ids = Prompt(prompt_tokens, run, session.config().vocab_size);
  request.max_new_tokens = new_tokens;
  request.sampling.temperature = 0;
  request.ignore_eos = true;
  SchedulerOptions options;
  options.prefix_caching = false;
  Generator generator(session.runner(), nullptr, session.blocks(), options);
  std::vector<Clock::time_point> stamps;
  const auto start = Clock::now();
  BATON_ASSIGN_OR_RETURN(auto results, generator.Generate({request}, [&](size_t, int32_t, const std::string&) {
    stamps.push_back(Clock::now());
  }));
  if (stamps.size() != static_cast<size_t>(new_tokens)) {
    return Status::Internal("expected " + std::to_string(new_tokens) + " tokens, got " + std::to_string(stamps.size()));
  }
  Timing t;
  t.first_token_s = Seconds(start, stamps.front());
  t.total_s = Seconds(start, stamps.back());
  if (stamps.size() > 1) t.decode_tokens_per_s = (stamps.size() - 1) / Seconds(stamps.front(), stamps.back());
  return t;
}

// Microseconds a decode step takes when `steps` of them are queued back to
// back with nothing between (no sampling, no host work): the pace the
// scheduler's run-ahead can at best reach. One sequence of `context`
// tokens (random K/V) in the session's idle cache.
StatusOr<double> BackToBackStepUs(ModelSession& session, int context, int steps) {
  StepPlan plan;
  plan.block_size = session.blocks().block_size();
  SequenceStep seq;
  seq.num_new_tokens = 1;
  seq.context_len = context;
  for (int b = 0; b * plan.block_size < context + steps; ++b) seq.block_table.push_back(b);
  plan.seqs = {seq};
  plan.token_ids = {17};
  Stage& stage = session.stage();
  for (int i = 0; i < 3; ++i) BATON_RETURN_IF_ERROR(stage.Forward(plan).status());  // graph recorded, warm
  const auto start = Clock::now();
  StatusOr<Tensor> logits = Status::Ok();
  for (int i = 0; i < steps; ++i) {
    plan.seqs[0].context_len = context + i;
    logits = stage.ForwardToDevice(plan);
    BATON_RETURN_IF_ERROR(logits.status());
  }
  stage.backend().ToHostF32(logits.value());  // waits for the last
  return Seconds(start, Clock::now()) * 1e6 / steps;
}

// GPU time per op kind over `steps` decode steps after a `prompt_tokens`
// prefill, through a Stage on an OpTimingBackend (weights loaded again).
StatusOr<nlohmann::json> ProfileDecodeStep(const std::string& model, DType dtype, int prompt_tokens, int steps) {
  BATON_ASSIGN_OR_RETURN(std::unique_ptr<CudaBackend> cuda, CudaBackend::Create(dtype, 0));
  OpTimingBackend timed(*cuda);
  BATON_ASSIGN_OR_RETURN(ModelConfig config, LoadModelConfig(model));
  StageOptions options;
  const int max_tokens = prompt_tokens + steps + 8;
  options.num_kv_blocks = max_tokens / options.block_size + 1;
  BATON_ASSIGN_OR_RETURN(auto stage, Stage::Load(model, config, options, timed));
  SequenceStep seq;
  for (int b = 0; b < options.num_kv_blocks; ++b) seq.block_table.push_back(b);
  auto step = [&](const std::vector<int32_t>& ids, int context) -> Status {
    StepPlan plan;
    seq.num_new_tokens = static_cast<int32_t>(ids.size());
    seq.context_len = context;
    plan.seqs = {seq};
    plan.token_ids = ids;
    return stage->Forward(plan).status();
  };
  std::vector<int32_t> prompt = Prompt(prompt_tokens, 99, config.vocab_size);
  BATON_RETURN_IF_ERROR(step(prompt, prompt_tokens));
  int context = prompt_tokens;
  for (int i = 0; i < 3; ++i) BATON_RETURN_IF_ERROR(step({17}, ++context));  // warm-up
  timed.Start();
  const auto start = Clock::now();
  for (int i = 0; i < steps; ++i) BATON_RETURN_IF_ERROR(step({17}, ++context));
  const double wall_ms = Seconds(start, Clock::now()) * 1e3 / steps;
  timed.Stop();
  BATON_RETURN_IF_ERROR(timed.Collect());
  nlohmann::json ops = nlohmann::json::object();
  double sum = 0;
  for (const auto& [op, ms] : timed.total_ms()) {
    ops[op] = {{"ms_per_step", ms / steps}, {"calls_per_step", timed.calls().at(op) / steps}};
    sum += ms / steps;
  }
  return nlohmann::json{{"steps", steps},
                        {"context_at_start", prompt_tokens},
                        {"wall_ms_per_step", wall_ms},
                        {"gpu_ops_ms_per_step", sum},
                        {"ops", ops}};
}

Status Run(const std::string& model, const std::string& label, DType dtype, int prompt_tokens, int new_tokens,
           int repeats, int ttft_prompt, int ttft_repeats, bool profile) {
  BATON_ASSIGN_OR_RETURN(double copy_gbs, MeasureDeviceCopyGBs(size_t{1} << 30, 10));
  BATON_ASSIGN_OR_RETURN(cuda::DeviceInfo gpu, cuda::GetDeviceInfo(0));
  SessionOptions options;
  options.model_dir = model;
  options.device = Device::kCuda;
  options.dtype = dtype;
  options.kv_cache_bytes = 0;  // sized from free memory, as `baton` does on a GPU
  const auto load_start = Clock::now();
  BATON_ASSIGN_OR_RETURN(auto session, ModelSession::Open(options));
  const double load_s = Seconds(load_start, Clock::now());

  BATON_RETURN_IF_ERROR(TimeGeneration(*session, prompt_tokens, 8, 1000).status());  // warm-up
  std::vector<double> decode, first, total;
  for (int r = 0; r < repeats; ++r) {
    BATON_ASSIGN_OR_RETURN(Timing t, TimeGeneration(*session, prompt_tokens, new_tokens, r));
    decode.push_back(t.decode_tokens_per_s);
    first.push_back(t.first_token_s * 1e3);
    total.push_back(new_tokens / t.total_s);
  }
  const double weight_bytes = static_cast<double>(session->stage().weight_bytes());
  const double floor = copy_gbs * 1e9 / weight_bytes;
  nlohmann::json out = {
      {"bench", "gpu_decode"},
      {"model", label.empty() ? model : label},
      {"gpu", gpu.name},
      {"dtype", DTypeName(dtype)},
      {"prompt_tokens", prompt_tokens},
      {"new_tokens", new_tokens},
      {"repeats", repeats},
      {"weight_bytes", weight_bytes},
      {"kv_cache_bytes", session->stage().kv_cache_bytes()},
      {"kv_blocks", session->blocks().num_blocks()},
      {"load_s", load_s},
      {"copy_bandwidth_gbs", copy_gbs},
      {"floor_tokens_per_s", floor},
      {"decode_tokens_per_s", Median(decode)},
      {"decode_tokens_per_s_runs", decode},
      {"fraction_of_floor", Median(decode) / floor},
      {"end_to_end_tokens_per_s", Median(total)},
      {"prefill_first_token_ms", Median(first)},
      {"cuda_graphs", session->stage().decode_graphs()},
      {"decode_graphs_recorded", session->stage().num_decode_graphs()},
      {"decode_graph_replays", session->stage().graph_replays()},
  };
  if (ttft_prompt > 0) {
    BATON_RETURN_IF_ERROR(TimeGeneration(*session, ttft_prompt, 1, 2000).status());  // warm-up (buffers grow)
    std::vector<double> ttft;
    for (int r = 0; r < ttft_repeats; ++r) {
      BATON_ASSIGN_OR_RETURN(Timing t, TimeGeneration(*session, ttft_prompt, 1, 3000 + r));
      ttft.push_back(t.first_token_s * 1e3);
    }
    out["ttft_prompt_tokens"] = ttft_prompt;
    out["ttft_ms"] = Median(ttft);
    out["ttft_ms_runs"] = ttft;
  }
  BATON_ASSIGN_OR_RETURN(out["back_to_back_step_us"], BackToBackStepUs(*session, prompt_tokens, new_tokens));
  out["decode_step_us"] = 1e6 / Median(decode);
  session.reset();
  if (profile) {
    BATON_ASSIGN_OR_RETURN(out["decode_step_profile"], ProfileDecodeStep(model, dtype, prompt_tokens, 32));
  }
  std::printf("%s\n", out.dump(1).c_str());
  return Status::Ok();
}

}  // namespace
}  // namespace baton::bench

int main(int argc, char** argv) {
  CLI::App app{"Batch-1 GPU decode against the bandwidth floor"};
  std::string model, label, dtype = "bf16";
  int prompt_tokens = 128, new_tokens = 128, repeats = 3, ttft_prompt = 0, ttft_repeats = 5;
  bool profile = false;
  app.add_option("--model", model, "Model folder (e.g. from `baton make-model`)")->required();
  app.add_option("--label", label, "Name for the model in the JSON (default: the folder)");
  app.add_option("--dtype", dtype)->check(CLI::IsMember({"bf16", "f16", "f32"}))->capture_default_str();
  app.add_option("--prompt-tokens", prompt_tokens)->capture_default_str();
  app.add_option("--new-tokens", new_tokens)->capture_default_str();
  app.add_option("--repeats", repeats)->capture_default_str();
  app.add_option("--ttft-prompt", ttft_prompt, "Also time the first token of a prompt this long (0: skip)");
  app.add_option("--ttft-repeats", ttft_repeats)->capture_default_str();
  app.add_flag("--profile", profile, "Also split one decode step into GPU time per op (loads the weights again)");
  CLI11_PARSE(app, argc, argv);
  const baton::DType dt = dtype == "bf16"  ? baton::DType::kBF16
                          : dtype == "f16" ? baton::DType::kF16
                                           : baton::DType::kF32;
  const baton::Status st = baton::bench::Run(model, label, dt, prompt_tokens, std::max(new_tokens, 2),
                                             std::max(repeats, 1), ttft_prompt, std::max(ttft_repeats, 1), profile);
  if (!st.ok()) {
    std::fprintf(stderr, "bench_gpu_decode: %s\n", st.ToString().c_str());
    return st.ExitCode();
  }
  return 0;
}
