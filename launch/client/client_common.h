// Pieces every `baton-client` subcommand shares: the server flags, id-list
// parsing and JSON printing. Exit codes: 0 ok, 2 INVALID_ARGUMENT (from the
// server or a bad flag; stderr names the field), 1 otherwise.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "sdk/cpp/baton_client.h"

namespace baton::client_cli {

using CommandRun = std::function<Status()>;

struct ServerFlags {
  std::string server = "localhost:50051";
  double timeout_seconds = 0;  // per call; 0 = none
  CallOptions call() const { return CallOptions{timeout_seconds}; }
};
void AddServerFlags(CLI::App& cmd, ServerFlags& flags);

// "1,2,3" -> {1, 2, 3}; `flag` names the option in errors.
StatusOr<std::vector<int32_t>> ParseIds(const std::string& text, const std::string& flag);

// One line of JSON (invalid UTF-8 replaced, as `baton` prints it).
std::string Dump(const nlohmann::json& j);

// "length", "stop", "eos", "cancelled", "error" (the names `baton generate --json` prints).
const char* FinishReasonName(v1::FinishReason reason);

void RegisterGenerateCommand(CLI::App& app, CommandRun& run);
void RegisterTokenizeCommand(CLI::App& app, CommandRun& run);
void RegisterDetokenizeCommand(CLI::App& app, CommandRun& run);
void RegisterInfoCommand(CLI::App& app, CommandRun& run);
void RegisterHealthCommand(CLI::App& app, CommandRun& run);
// `finetune create|get|list|watch|cancel` (finetune_commands.cc).
void RegisterFinetuneCommands(CLI::App& app, CommandRun& run);

}  // namespace baton::client_cli
