// Pieces every `baton` subcommand shares: the model flags, parsing of id
// lists, and how a failure becomes a message and an exit code.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <string>
#include <vector>

#include "stages/model_session.h"

namespace baton::cli {

// A subcommand's work; its Status decides the exit code (see Status::ExitCode).
using CommandRun = std::function<Status()>;

struct ModelFlags {
  std::string model_dir = BATON_BUNDLED_MODEL;
  int threads = 0;
  double kv_cache_mb = 512;
};
void AddModelFlags(CLI::App& cmd, ModelFlags& flags);
StatusOr<std::unique_ptr<ModelSession>> OpenSession(const ModelFlags& flags);

// "1,2,3" -> {1, 2, 3}; `flag` names the option in errors.
StatusOr<std::vector<int32_t>> ParseIdList(const std::string& text, const std::string& flag);

void RegisterGenerateCommand(CLI::App& app, CommandRun& run);
void RegisterLogitsCommand(CLI::App& app, CommandRun& run);
void RegisterMakeModelCommand(CLI::App& app, CommandRun& run);

}  // namespace baton::cli
