// `baton generate`: prompts in, generated text out. One prompt streams its
// text (or prints one JSON object with --json); --prompts-file runs many
// prompts as one batch and prints one JSON line per prompt. Under
// `mpirun -np P` the model runs as P pipeline stages and only rank 0 prints.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "launch/cli/cli_common.h"
#include "runtime/serving/generator.h"

namespace baton::cli {
namespace {

struct GenerateFlags {
  ModelFlags model;
  std::string prompt;
  std::string prompt_ids;
  std::string prompts_file;
  int max_new_tokens = 32;
  float temperature = 0, top_p = 1, min_p = 0, repetition_penalty = 1;
  int top_k = 0;
  uint64_t seed = 0;
  std::vector<std::string> stop;
  bool ignore_eos = false;
  bool json = false;
  int micro_batches = 0;
  int max_batch_tokens = SchedulerOptions{}.max_batch_tokens;
  // Which sampling flags were given (the rest come from generation_config.json).
  CLI::Option *temperature_opt = nullptr, *top_k_opt = nullptr, *top_p_opt = nullptr, *min_p_opt = nullptr,
              *penalty_opt = nullptr;
};

// The request the flags describe, minus the prompt.
GenerationRequest RequestFromFlags(const GenerateFlags& f, SamplingParams p) {
  if (f.temperature_opt->count()) p.temperature = f.temperature;
  if (f.top_k_opt->count()) p.top_k = f.top_k;
  if (f.top_p_opt->count()) p.top_p = f.top_p;
  if (f.min_p_opt->count()) p.min_p = f.min_p;
  if (f.penalty_opt->count()) p.repetition_penalty = f.repetition_penalty;
  p.seed = f.seed;
  GenerationRequest r;
  r.sampling = p;
  r.max_new_tokens = f.max_new_tokens;
  r.stop = f.stop;
  r.ignore_eos = f.ignore_eos;
  return r;
}

StatusOr<std::vector<int32_t>> Tokenize(ModelSession& session, const std::string& text, const std::string& where) {
  if (!session.tokenizer()) return Status::InvalidArgument(where + " needs a tokenizer.json in the model folder");
  return session.tokenizer()->Encode(text);
}

// One line of --prompts-file: plain text, or a JSON object with "prompt" or
// "prompt_ids" and any of the generation flags' fields (snake_case).
StatusOr<GenerationRequest> ParsePromptLine(ModelSession& session, const std::string& line, GenerationRequest r,
                                            const std::string& where) {
  if (line.empty() || line[0] != '{') {
    BATON_ASSIGN_OR_RETURN(r.prompt_ids, Tokenize(session, line, where));
    return r;
  }
  nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return Status::InvalidArgument(where + ": not a JSON object");
  auto field_error = [&](const char* key) {
    return Status::InvalidArgument(where + ": field '" + key + "' has the wrong type (" + j[key].dump() + ")");
  };
  auto number = [&](const char* key, auto* out) -> Status {
    if (!j.contains(key)) return Status::Ok();
    if (!j[key].is_number()) return field_error(key);
    *out = j[key].get<std::remove_pointer_t<decltype(out)>>();
    return Status::Ok();
  };
  if (j.contains("prompt_ids")) {
    if (!j["prompt_ids"].is_array()) return field_error("prompt_ids");
    for (const auto& id : j["prompt_ids"]) {
      if (!id.is_number_integer()) return field_error("prompt_ids");
      r.prompt_ids.push_back(id.get<int32_t>());
    }
  } else if (j.contains("prompt") && j["prompt"].is_string()) {
    BATON_ASSIGN_OR_RETURN(r.prompt_ids, Tokenize(session, j["prompt"].get<std::string>(), where));
  } else {
    return Status::InvalidArgument(where + ": needs a string 'prompt' or an array 'prompt_ids'");
  }
  BATON_RETURN_IF_ERROR(number("max_new_tokens", &r.max_new_tokens));
  BATON_RETURN_IF_ERROR(number("temperature", &r.sampling.temperature));
  BATON_RETURN_IF_ERROR(number("top_k", &r.sampling.top_k));
  BATON_RETURN_IF_ERROR(number("top_p", &r.sampling.top_p));
  BATON_RETURN_IF_ERROR(number("min_p", &r.sampling.min_p));
  BATON_RETURN_IF_ERROR(number("repetition_penalty", &r.sampling.repetition_penalty));
  BATON_RETURN_IF_ERROR(number("seed", &r.sampling.seed));
  if (j.contains("ignore_eos")) {
    if (!j["ignore_eos"].is_boolean()) return field_error("ignore_eos");
    r.ignore_eos = j["ignore_eos"].get<bool>();
  }
  if (j.contains("stop")) {
    if (!j["stop"].is_array()) return field_error("stop");
    r.stop.clear();
    for (const auto& s : j["stop"]) {
      if (!s.is_string()) return field_error("stop");
      r.stop.push_back(s.get<std::string>());
    }
  }
  return r;
}

StatusOr<std::vector<GenerationRequest>> BuildRequests(const GenerateFlags& f, ModelSession& session) {
  const int given = !f.prompt.empty() + !f.prompt_ids.empty() + !f.prompts_file.empty();
  if (given != 1) {
    return Status::InvalidArgument("give exactly one of --prompt TEXT, --prompt-ids 1,2,3 and --prompts-file FILE");
  }
  const GenerationRequest base = RequestFromFlags(f, session.default_sampling());
  std::vector<GenerationRequest> requests;
  if (!f.prompts_file.empty()) {
    std::ifstream in(f.prompts_file);
    if (!in) return Status::NotFound("--prompts-file: cannot open '" + f.prompts_file + "'");
    std::string line;
    for (int number = 1; std::getline(in, line); ++number) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;  // blank lines separate nothing
      const std::string where = f.prompts_file + ":" + std::to_string(number);
      BATON_ASSIGN_OR_RETURN(GenerationRequest r, ParsePromptLine(session, line, base, where));
      requests.push_back(std::move(r));
    }
    if (requests.empty()) return Status::InvalidArgument("--prompts-file '" + f.prompts_file + "' has no prompts");
    return requests;
  }
  GenerationRequest r = base;
  if (!f.prompt_ids.empty()) {
    BATON_ASSIGN_OR_RETURN(r.prompt_ids, ParseIdList(f.prompt_ids, "--prompt-ids"));
  } else {
    BATON_ASSIGN_OR_RETURN(r.prompt_ids, Tokenize(session, f.prompt, "--prompt"));
  }
  requests.push_back(std::move(r));
  return requests;
}

nlohmann::json ResultJson(const GenerationRequest& request, const GenerationResult& r) {
  return {{"prompt_ids", request.prompt_ids},
          {"output_ids", r.output_ids},
          {"text", r.text},
          {"finish_reason", FinishReasonName(r.finish_reason)}};
}

std::string Dump(const nlohmann::json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

Status GenerateOnCoordinator(const GenerateFlags& f, ModelSession& session) {
  if (f.max_batch_tokens < 1) {
    return Status::InvalidArgument("--max-batch-tokens must be >= 1 (got " + std::to_string(f.max_batch_tokens) + ")");
  }
  BATON_ASSIGN_OR_RETURN(auto requests, BuildRequests(f, session));
  Generator generator(session.runner(), session.tokenizer(), session.blocks(),
                      SchedulerOptions{.micro_batches = f.micro_batches, .max_batch_tokens = f.max_batch_tokens});
  const bool stream = f.prompts_file.empty() && !f.json;
  TokenCallback on_token = nullptr;
  if (stream) {
    on_token = [](size_t, int32_t, const std::string& delta) {
      std::fputs(delta.c_str(), stdout);
      std::fflush(stdout);
    };
  }
  const auto start = std::chrono::steady_clock::now();
  BATON_ASSIGN_OR_RETURN(auto results, generator.Generate(requests, on_token));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  size_t generated = 0;
  for (size_t i = 0; i < results.size(); ++i) {
    generated += results[i].output_ids.size();
    if (stream) continue;
    nlohmann::json out = ResultJson(requests[i], results[i]);
    if (!f.prompts_file.empty()) out["index"] = i;
    std::printf("%s\n", Dump(out).c_str());
  }
  if (stream) std::printf("\n");
  std::fprintf(stderr, "[%zu prompts, %zu new tokens in %.3f s: %.1f tokens/s]\n", requests.size(), generated, seconds,
               generated / seconds);
  if (!f.model.trace_path.empty()) {
    BATON_ASSIGN_OR_RETURN(PipelineUtilization u, session.WriteTrace(f.model.trace_path, generator.micro_batches()));
    std::fprintf(stderr, "trace: %s written; %s\n", f.model.trace_path.c_str(), u.ToJson().dump().c_str());
  }
  return Status::Ok();
}

Status RunGenerate(const GenerateFlags& f) {
  return RunOnPipeline(f.model, [&f](ModelSession& session) { return GenerateOnCoordinator(f, session); });
}

}  // namespace

void RegisterGenerateCommand(CLI::App& app, CommandRun& run) {
  auto flags = std::make_shared<GenerateFlags>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate text from a prompt (or many)");
  AddModelFlags(*cmd, flags->model);
  cmd->add_option("--prompt", flags->prompt, "Prompt text (tokenized with the model's tokenizer.json)");
  cmd->add_option("--prompt-ids", flags->prompt_ids, "Prompt token ids, comma separated");
  cmd->add_option("--prompts-file", flags->prompts_file,
                  "One prompt per line (text, or JSONL with prompt/prompt_ids and per-prompt parameters)");
  cmd->add_option("--max-new-tokens", flags->max_new_tokens, "Most tokens to generate")->capture_default_str();
  flags->temperature_opt =
      cmd->add_option("--temperature", flags->temperature, "0 = greedy (default: generation_config.json, else greedy)");
  flags->top_k_opt = cmd->add_option("--top-k", flags->top_k, "Keep the k most likely tokens (0 = off)");
  flags->top_p_opt = cmd->add_option("--top-p", flags->top_p, "Nucleus sampling mass in (0, 1]");
  flags->min_p_opt = cmd->add_option("--min-p", flags->min_p, "Drop tokens below min_p x the top probability");
  flags->penalty_opt =
      cmd->add_option("--repetition-penalty", flags->repetition_penalty, "Penalty for seen tokens (1 = off)");
  cmd->add_option("--seed", flags->seed, "Sampling seed: the same seed gives the same tokens")->capture_default_str();
  cmd->add_option("--stop", flags->stop, "Stop string (repeatable); not included in the output");
  cmd->add_flag("--ignore-eos", flags->ignore_eos, "Keep generating past the EOS token");
  cmd->add_option("--micro-batches", flags->micro_batches, "Micro-batches in flight (default: one per stage)");
  cmd->add_option("--max-batch-tokens", flags->max_batch_tokens,
                  "Tokens per forward step: decode tokens plus prefill chunks")
      ->capture_default_str();
  cmd->add_option("--trace", flags->model.trace_path,
                  "Write a Chrome/Perfetto trace of every stage's compute/send/recv/wait spans");
  cmd->add_flag("--json", flags->json, "Print one JSON object: prompt_ids, output_ids, text, finish_reason");
  cmd->callback([flags, &run] { run = [flags] { return RunGenerate(*flags); }; });
}

}  // namespace baton::cli
