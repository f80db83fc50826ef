// `baton generate`: one prompt in, generated text out (streamed, or one
// JSON object with --json).
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "launch/cli/cli_common.h"
#include "runtime/serving/generator.h"

namespace baton::cli {
namespace {

struct GenerateFlags {
  ModelFlags model;
  std::string prompt;
  std::string prompt_ids;
  int max_new_tokens = 32;
  float temperature = 0, top_p = 1, min_p = 0, repetition_penalty = 1;
  int top_k = 0;
  uint64_t seed = 0;
  std::vector<std::string> stop;
  bool ignore_eos = false;
  bool json = false;
  // Which sampling flags were given (the rest come from generation_config.json).
  CLI::Option *temperature_opt = nullptr, *top_k_opt = nullptr, *top_p_opt = nullptr, *min_p_opt = nullptr,
              *penalty_opt = nullptr;
};

SamplingParams SamplingFrom(const GenerateFlags& f, SamplingParams p) {
  if (f.temperature_opt->count()) p.temperature = f.temperature;
  if (f.top_k_opt->count()) p.top_k = f.top_k;
  if (f.top_p_opt->count()) p.top_p = f.top_p;
  if (f.min_p_opt->count()) p.min_p = f.min_p;
  if (f.penalty_opt->count()) p.repetition_penalty = f.repetition_penalty;
  p.seed = f.seed;
  return p;
}

Status RunGenerate(const GenerateFlags& f) {
  if (f.prompt.empty() == f.prompt_ids.empty()) {
    return Status::InvalidArgument("give exactly one of --prompt TEXT and --prompt-ids 1,2,3 (and not empty)");
  }
  BATON_ASSIGN_OR_RETURN(auto session, OpenSession(f.model));
  GenerationRequest request;
  if (!f.prompt_ids.empty()) {
    BATON_ASSIGN_OR_RETURN(request.prompt_ids, ParseIdList(f.prompt_ids, "--prompt-ids"));
  } else {
    if (!session->tokenizer())
      return Status::InvalidArgument("--prompt needs a tokenizer.json in " + f.model.model_dir);
    request.prompt_ids = session->tokenizer()->Encode(f.prompt);
  }
  request.max_new_tokens = f.max_new_tokens;
  request.sampling = SamplingFrom(f, session->default_sampling());
  request.stop = f.stop;
  request.ignore_eos = f.ignore_eos;

  Generator generator(session->runner(), session->tokenizer(), session->blocks());
  const auto start = std::chrono::steady_clock::now();
  TokenCallback stream = nullptr;
  if (!f.json) {
    stream = [](size_t, int32_t, const std::string& delta) {
      std::fputs(delta.c_str(), stdout);
      std::fflush(stdout);
    };
  }
  BATON_ASSIGN_OR_RETURN(auto results, generator.Generate({request}, stream));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const GenerationResult& r = results[0];
  if (f.json) {
    nlohmann::json out = {{"prompt_ids", request.prompt_ids},
                          {"output_ids", r.output_ids},
                          {"text", r.text},
                          {"finish_reason", FinishReasonName(r.finish_reason)}};
    std::printf("%s\n", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    std::printf("\n");
    std::fprintf(stderr, "[%zu prompt + %zu new tokens in %.3f s, finish: %s]\n", request.prompt_ids.size(),
                 r.output_ids.size(), seconds, FinishReasonName(r.finish_reason));
  }
  return Status::Ok();
}

}  // namespace

void RegisterGenerateCommand(CLI::App& app, CommandRun& run) {
  auto flags = std::make_shared<GenerateFlags>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate text from a prompt");
  AddModelFlags(*cmd, flags->model);
  cmd->add_option("--prompt", flags->prompt, "Prompt text (tokenized with the model's tokenizer.json)");
  cmd->add_option("--prompt-ids", flags->prompt_ids, "Prompt token ids, comma separated");
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
  cmd->add_flag("--json", flags->json, "Print one JSON object: prompt_ids, output_ids, text, finish_reason");
  cmd->callback([flags, &run] { run = [flags] { return RunGenerate(*flags); }; });
}

}  // namespace baton::cli
