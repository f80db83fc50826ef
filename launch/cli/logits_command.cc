// `baton logits`: the top-k logits at every position of a prompt, for
// checking numerics against a reference implementation.
#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <numeric>

#include "launch/cli/cli_common.h"
#include "runtime/serving/generator.h"

namespace baton::cli {
namespace {

struct LogitsFlags {
  ModelFlags model;
  std::string prompt_ids;
  std::string prompt;
  int top_k = 5;
  bool json = false;
};

Status PrintLogits(const LogitsFlags& f, ModelSession& session);

Status RunLogits(const LogitsFlags& f) {
  if (f.prompt.empty() == f.prompt_ids.empty()) {
    return Status::InvalidArgument("give exactly one of --prompt TEXT and --prompt-ids 1,2,3 (and not empty)");
  }
  if (f.top_k <= 0) return Status::InvalidArgument("--top-k must be positive (got " + std::to_string(f.top_k) + ")");
  return RunOnPipeline(f.model, [&f](ModelSession& session) { return PrintLogits(f, session); });
}

Status PrintLogits(const LogitsFlags& f, ModelSession& session) {
  std::vector<int32_t> ids;
  if (!f.prompt_ids.empty()) {
    BATON_ASSIGN_OR_RETURN(ids, ParseIdList(f.prompt_ids, "--prompt-ids"));
  } else {
    if (!session.tokenizer()) return Status::InvalidArgument("--prompt needs a tokenizer.json in " + f.model.model_dir);
    ids = session.tokenizer()->Encode(f.prompt);
  }
  const ModelConfig& c = session.config();
  GenerationRequest check;  // the same checks as a generation request's prompt
  check.prompt_ids = ids;
  check.max_new_tokens = 0;
  BATON_RETURN_IF_ERROR(Generator(session.runner(), nullptr, session.blocks()).Validate(check));
  StepPlan plan;
  plan.block_size = session.blocks().block_size();
  SequenceStep step;
  step.num_new_tokens = step.context_len = static_cast<int32_t>(ids.size());
  step.all_logits = true;
  BATON_RETURN_IF_ERROR(session.blocks().Reserve(step.block_table, step.context_len));
  plan.seqs.push_back(step);
  plan.token_ids = ids;
  plan.return_logits = true;
  BATON_RETURN_IF_ERROR(session.runner().Submit(plan));
  BATON_ASSIGN_OR_RETURN(StepOutput result, session.runner().Collect());
  const Tensor& logits = result.logits;

  const int k = std::min<int>(f.top_k, c.vocab_size);
  nlohmann::json top_ids = nlohmann::json::array(), top_logits = nlohmann::json::array();
  std::vector<int32_t> order(c.vocab_size);
  for (int64_t row = 0; row < logits.dim(0); ++row) {
    const float* l = logits.data<float>() + row * c.vocab_size;
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [l](int32_t a, int32_t b) { return l[a] > l[b] || (l[a] == l[b] && a < b); });
    nlohmann::json row_ids = nlohmann::json::array(), row_logits = nlohmann::json::array();
    for (int i = 0; i < k; ++i) {
      row_ids.push_back(order[i]);
      row_logits.push_back(l[order[i]]);
    }
    top_ids.push_back(row_ids);
    top_logits.push_back(row_logits);
  }
  nlohmann::json out = {{"top_ids", top_ids}, {"top_logits", top_logits}};
  std::printf("%s\n", out.dump(f.json ? -1 : 1).c_str());
  return Status::Ok();
}

}  // namespace

void RegisterLogitsCommand(CLI::App& app, CommandRun& run) {
  auto flags = std::make_shared<LogitsFlags>();
  CLI::App* cmd = app.add_subcommand("logits", "Print the top-k logits at every prompt position");
  AddModelFlags(*cmd, flags->model);
  cmd->add_option("--prompt-ids", flags->prompt_ids, "Prompt token ids, comma separated");
  cmd->add_option("--prompt", flags->prompt, "Prompt text");
  cmd->add_option("--top-k", flags->top_k, "How many logits per position")->capture_default_str();
  cmd->add_flag("--json", flags->json, "One-line JSON: top_ids, top_logits");
  cmd->callback([flags, &run] { run = [flags] { return RunLogits(*flags); }; });
}

}  // namespace baton::cli
