// `baton-client generate`: `baton generate` against a running server. The
// same flags and --json; a single prompt streams its text unless --json is
// given (--stream --json prints one JSON line per token event, then the
// result); --prompts-file sends its prompts concurrently and prints one JSON
// line per prompt, with its index, in file order.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <thread>

#include "launch/client/client_common.h"

namespace baton::client_cli {
namespace {

struct GenerateFlags {
  ServerFlags server;
  std::string prompt, prompt_ids, prompts_file;
  int max_new_tokens = 32;
  float temperature = 0, top_p = 1, min_p = 0, repetition_penalty = 1;
  int top_k = 0;
  uint64_t seed = 0;
  std::vector<std::string> stop;
  bool ignore_eos = false, json = false, stream = false;
  int logprobs = 0;
  int concurrency = 16;
  std::string request_id;
  // Sampling fields are sent only when given; the server fills the rest
  // from the model's generation_config.json, as `baton generate` does.
  CLI::Option *temperature_opt = nullptr, *top_k_opt = nullptr, *top_p_opt = nullptr, *min_p_opt = nullptr,
              *penalty_opt = nullptr, *seed_opt = nullptr;
};

v1::GenerateRequest RequestFromFlags(const GenerateFlags& f) {
  v1::GenerateRequest r;
  r.set_max_new_tokens(f.max_new_tokens);
  v1::SamplingParameters* s = r.mutable_sampling();
  if (f.temperature_opt->count()) s->set_temperature(f.temperature);
  if (f.top_k_opt->count()) s->set_top_k(f.top_k);
  if (f.top_p_opt->count()) s->set_top_p(f.top_p);
  if (f.min_p_opt->count()) s->set_min_p(f.min_p);
  if (f.penalty_opt->count()) s->set_repetition_penalty(f.repetition_penalty);
  if (f.seed_opt->count()) s->set_seed(f.seed);
  for (const std::string& stop : f.stop) r.add_stop(stop);
  r.set_ignore_eos(f.ignore_eos);
  r.set_logprobs(f.logprobs);
  r.set_request_id(f.request_id);
  return r;
}

// One line of --prompts-file, in `baton generate`'s format: plain text, or a
// JSON object with "prompt" or "prompt_ids" and any of the generation flags'
// fields (snake_case), which override the flags for that prompt.
StatusOr<v1::GenerateRequest> ParsePromptLine(const std::string& line, v1::GenerateRequest r,
                                              const std::string& where) {
  if (line.empty() || line[0] != '{') {
    r.set_text(line);
    return r;
  }
  const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return Status::InvalidArgument(where + ": not a JSON object");
  auto wrong_type = [&](const char* key) {
    return Status::InvalidArgument(where + ": field '" + key + "' has the wrong type (" + j[key].dump() + ")");
  };
  if (j.contains("prompt_ids")) {
    if (!j["prompt_ids"].is_array()) return wrong_type("prompt_ids");
    for (const auto& id : j["prompt_ids"]) {
      if (!id.is_number_integer()) return wrong_type("prompt_ids");
      r.mutable_token_ids()->add_ids(id.get<int32_t>());
    }
  } else if (j.contains("prompt") && j["prompt"].is_string()) {
    r.set_text(j["prompt"].get<std::string>());
  } else {
    return Status::InvalidArgument(where + ": needs a string 'prompt' or an array 'prompt_ids'");
  }
  v1::SamplingParameters* s = r.mutable_sampling();
  for (const char* key : {"max_new_tokens", "top_k", "logprobs"}) {
    if (!j.contains(key)) continue;
    if (!j[key].is_number_integer()) return wrong_type(key);
    const int value = j[key].get<int>();
    if (key == std::string("max_new_tokens")) r.set_max_new_tokens(value);
    if (key == std::string("top_k")) s->set_top_k(value);
    if (key == std::string("logprobs")) r.set_logprobs(value);
  }
  for (const char* key : {"temperature", "top_p", "min_p", "repetition_penalty"}) {
    if (!j.contains(key)) continue;
    if (!j[key].is_number()) return wrong_type(key);
    const float value = j[key].get<float>();
    if (key == std::string("temperature")) s->set_temperature(value);
    if (key == std::string("top_p")) s->set_top_p(value);
    if (key == std::string("min_p")) s->set_min_p(value);
    if (key == std::string("repetition_penalty")) s->set_repetition_penalty(value);
  }
  if (j.contains("seed")) {
    if (!j["seed"].is_number_unsigned()) return wrong_type("seed");
    s->set_seed(j["seed"].get<uint64_t>());
  }
  if (j.contains("ignore_eos")) {
    if (!j["ignore_eos"].is_boolean()) return wrong_type("ignore_eos");
    r.set_ignore_eos(j["ignore_eos"].get<bool>());
  }
  if (j.contains("stop")) {
    if (!j["stop"].is_array()) return wrong_type("stop");
    r.clear_stop();
    for (const auto& stop : j["stop"]) {
      if (!stop.is_string()) return wrong_type("stop");
      r.add_stop(stop.get<std::string>());
    }
  }
  return r;
}

StatusOr<std::vector<v1::GenerateRequest>> BuildRequests(const GenerateFlags& f) {
  const int given = !f.prompt.empty() + !f.prompt_ids.empty() + !f.prompts_file.empty();
  if (given != 1) {
    return Status::InvalidArgument("give exactly one of --prompt TEXT, --prompt-ids 1,2,3 and --prompts-file FILE");
  }
  if (f.stream && !f.prompts_file.empty()) {
    return Status::InvalidArgument("--stream: streams one prompt; --prompts-file prints one JSON line per prompt");
  }
  const v1::GenerateRequest base = RequestFromFlags(f);
  std::vector<v1::GenerateRequest> requests;
  if (!f.prompts_file.empty()) {
    std::ifstream in(f.prompts_file);
    if (!in) return Status::InvalidArgument("--prompts-file: cannot open '" + f.prompts_file + "'");
    std::string line;
    for (int number = 1; std::getline(in, line); ++number) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      BATON_ASSIGN_OR_RETURN(v1::GenerateRequest r,
                             ParsePromptLine(line, base, f.prompts_file + ":" + std::to_string(number)));
      requests.push_back(std::move(r));
    }
    if (requests.empty()) return Status::InvalidArgument("--prompts-file '" + f.prompts_file + "' has no prompts");
    return requests;
  }
  v1::GenerateRequest r = base;
  if (!f.prompt_ids.empty()) {
    BATON_ASSIGN_OR_RETURN(auto ids, ParseIds(f.prompt_ids, "--prompt-ids"));
    r.mutable_token_ids()->mutable_ids()->Add(ids.begin(), ids.end());
  } else {
    r.set_text(f.prompt);
  }
  requests.push_back(std::move(r));
  return requests;
}

// Per-token log-probabilities gathered from the token events.
struct Logprobs {
  nlohmann::json chosen = nlohmann::json::array();
  nlohmann::json top = nlohmann::json::array();
  void Add(const v1::TokenEvent& e) {
    for (float lp : e.logprobs()) chosen.push_back(lp);
    for (const v1::TopLogprobs& t : e.top_logprobs()) {
      nlohmann::json entries = nlohmann::json::array();
      for (const v1::TopLogprob& entry : t.entries()) {
        entries.push_back({{"token_id", entry.token_id()}, {"logprob", entry.logprob()}});
      }
      top.push_back(std::move(entries));
    }
  }
};

nlohmann::json TokenEventJson(const v1::TokenEvent& e) {
  nlohmann::json j = {{"token_ids", e.token_ids()}, {"text", e.text()}};
  if (e.logprobs_size() || e.top_logprobs_size()) {
    Logprobs lp;
    lp.Add(e);
    j["logprobs"] = lp.chosen;
    j["top_logprobs"] = lp.top;
  }
  return j;
}

// `baton generate --json`'s keys (prompt_ids, output_ids, text,
// finish_reason) plus what the server adds: usage, timings and, when
// requested, logprobs/top_logprobs.
nlohmann::json ResultJson(const v1::GenerateRequest& request, const v1::FinalEvent& final_event,
                          const Logprobs& logprobs) {
  nlohmann::json j = {{"output_ids", final_event.output_ids()},
                      {"text", final_event.text()},
                      {"finish_reason", FinishReasonName(final_event.finish_reason())},
                      {"usage",
                       {{"prompt_tokens", final_event.usage().prompt_tokens()},
                        {"completion_tokens", final_event.usage().completion_tokens()},
                        {"cached_prompt_tokens", final_event.usage().cached_prompt_tokens()}}},
                      {"timings",
                       {{"queue_seconds", final_event.timings().queue_seconds()},
                        {"time_to_first_token_seconds", final_event.timings().time_to_first_token_seconds()},
                        {"total_seconds", final_event.timings().total_seconds()}}}};
  if (final_event.prompt_ids_size()) {
    j["prompt_ids"] = final_event.prompt_ids();
  } else if (request.has_token_ids()) {
    j["prompt_ids"] = request.token_ids().ids();
  }
  if (request.logprobs() > 0) {
    j["logprobs"] = logprobs.chosen;
    j["top_logprobs"] = logprobs.top;
  }
  return j;
}

void PrintStats(size_t prompts, size_t generated, std::chrono::steady_clock::time_point start) {
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::fprintf(stderr, "[%zu prompts, %zu new tokens in %.3f s: %.1f tokens/s]\n", prompts, generated, seconds,
               seconds > 0 ? generated / seconds : 0.0);
}

Status GenerateOne(const GenerateFlags& f, BatonClient& client, const v1::GenerateRequest& request) {
  const bool stream_text = !f.json;             // like `baton generate`: text as it arrives
  const bool stream_json = f.json && f.stream;  // one JSON line per event
  Logprobs logprobs;
  bool printed_text = false;
  const auto start = std::chrono::steady_clock::now();
  auto on_token = [&](const v1::TokenEvent& e) {
    logprobs.Add(e);
    if (stream_text) {
      printed_text = printed_text || !e.text().empty();
      std::fputs(e.text().c_str(), stdout);
      std::fflush(stdout);
    } else if (stream_json) {
      std::printf("%s\n", Dump(TokenEventJson(e)).c_str());
      std::fflush(stdout);
    }
    return true;
  };
  StatusOr<v1::FinalEvent> final_event = client.Generate(request, on_token, f.server.call());
  if (stream_text && (printed_text || final_event.ok())) std::printf("\n");
  BATON_RETURN_IF_ERROR(final_event.status());
  if (f.json) std::printf("%s\n", Dump(ResultJson(request, *final_event, logprobs)).c_str());
  PrintStats(1, final_event->output_ids_size(), start);
  return Status::Ok();
}

// Sends the prompts concurrently (at most --concurrency in flight) and prints
// their lines in file order; a failed prompt prints {"index", "error",
// "code"} and the first failure decides the exit code.
Status GenerateMany(const GenerateFlags& f, BatonClient& client, const std::vector<v1::GenerateRequest>& requests) {
  struct Outcome {
    std::optional<v1::FinalEvent> final_event;
    Status status;
    Logprobs logprobs;
  };
  std::vector<Outcome> outcomes(requests.size());
  std::atomic<size_t> next{0};
  const auto start = std::chrono::steady_clock::now();
  auto worker = [&] {
    for (size_t i = next++; i < requests.size(); i = next++) {
      Outcome& out = outcomes[i];
      auto on_token = [&out](const v1::TokenEvent& e) {
        out.logprobs.Add(e);
        return true;
      };
      StatusOr<v1::FinalEvent> r = client.Generate(requests[i], on_token, f.server.call());
      if (r.ok()) {
        out.final_event = std::move(*r);
      } else {
        out.status = r.status();
      }
    }
  };
  const size_t threads = std::min<size_t>(std::max(f.concurrency, 1), requests.size());
  std::vector<std::thread> pool;
  for (size_t t = 0; t < threads; ++t) pool.emplace_back(worker);
  for (std::thread& t : pool) t.join();

  Status first_failure;
  size_t generated = 0;
  for (size_t i = 0; i < requests.size(); ++i) {
    const Outcome& out = outcomes[i];
    nlohmann::json line;
    if (out.final_event) {
      line = ResultJson(requests[i], *out.final_event, out.logprobs);
      generated += out.final_event->output_ids_size();
    } else {
      line = {{"error", out.status.message()}, {"code", StatusCodeName(out.status.code())}};
      if (first_failure.ok()) first_failure = out.status.WithContext("prompt " + std::to_string(i));
    }
    line["index"] = i;
    std::printf("%s\n", Dump(line).c_str());
  }
  PrintStats(requests.size(), generated, start);
  return first_failure;
}

Status RunGenerate(const GenerateFlags& f) {
  BATON_ASSIGN_OR_RETURN(auto requests, BuildRequests(f));
  BatonClient client(f.server.server);
  if (f.prompts_file.empty()) return GenerateOne(f, client, requests[0]);
  return GenerateMany(f, client, requests);
}

}  // namespace

void RegisterGenerateCommand(CLI::App& app, CommandRun& run) {
  auto f = std::make_shared<GenerateFlags>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate text from a prompt (or many) on a baton-server");
  AddServerFlags(*cmd, f->server);
  cmd->add_option("--prompt", f->prompt, "Prompt text (tokenized by the server)");
  cmd->add_option("--prompt-ids", f->prompt_ids, "Prompt token ids, comma separated");
  cmd->add_option("--prompts-file", f->prompts_file,
                  "One prompt per line (text, or JSONL with prompt/prompt_ids and per-prompt parameters)");
  cmd->add_option("--max-new-tokens", f->max_new_tokens, "Most tokens to generate")->capture_default_str();
  f->temperature_opt =
      cmd->add_option("--temperature", f->temperature, "0 = greedy (default: generation_config.json, else greedy)");
  f->top_k_opt = cmd->add_option("--top-k", f->top_k, "Keep the k most likely tokens (0 = off)");
  f->top_p_opt = cmd->add_option("--top-p", f->top_p, "Nucleus sampling mass in (0, 1]");
  f->min_p_opt = cmd->add_option("--min-p", f->min_p, "Drop tokens below min_p x the top probability");
  f->penalty_opt = cmd->add_option("--repetition-penalty", f->repetition_penalty, "Penalty for seen tokens (1 = off)");
  f->seed_opt = cmd->add_option("--seed", f->seed, "Sampling seed: the same seed gives the same tokens");
  cmd->add_option("--stop", f->stop, "Stop string (repeatable); not included in the output");
  cmd->add_flag("--ignore-eos", f->ignore_eos, "Keep generating past the EOS token");
  cmd->add_option("--logprobs", f->logprobs, "Log-probabilities of each token and its top N alternatives");
  cmd->add_option("--request-id", f->request_id, "Id the server puts in its logs");
  cmd->add_option("--concurrency", f->concurrency, "Requests in flight for --prompts-file")->capture_default_str();
  cmd->add_flag("--stream", f->stream, "Print text as it arrives (with --json: one JSON line per token event)");
  cmd->add_flag("--json", f->json,
                "Print one JSON object: prompt_ids, output_ids, text, finish_reason, usage, timings");
  cmd->callback([f, &run] { run = [f] { return RunGenerate(*f); }; });
}

}  // namespace baton::client_cli
