// From a FineTuning CreateJobRequest to the command line of its process:
// every field is checked first (INVALID_ARGUMENT naming the field), paths
// are confined to --finetune-dir, and only the fields that are set become
// `baton finetune` flags, so the binary's own defaults apply to the rest.
// Stateless apart from reading the file system; thread-safe.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "baton/v1/finetuning.pb.h"
#include "runtime/core/status.h"

namespace baton::server {

// How baton-server runs fine-tuning jobs (its --finetune-* flags).
struct FinetuneConfig {
  std::filesystem::path dir;  // --finetune-dir: root of every job's files; empty = fine-tuning off
  std::string launcher;       // --finetune-launcher: words before the binary, "{ranks}" = pp * dp
  int max_running_jobs = 1;   // --max-finetune-jobs: more are QUEUED
  std::string baton_binary;   // --baton-binary: the `baton` executable
  std::string default_model;  // CreateJobRequest.model when empty: the served model
  double cancel_grace_s = 5;  // SIGTERM to SIGKILL
};

// A checked request, ready to run.
struct FinetunePlan {
  std::filesystem::path out;      // resolved, inside config.dir
  int total_steps = 0;            // request.steps, 0 when unset
  std::vector<std::string> argv;  // launcher words, binary, "finetune", "--json", flags
};

// `config.dir` must be canonical (FinetuneJobs makes it so).
StatusOr<FinetunePlan> PlanFinetuneJob(const v1::CreateJobRequest& request, const FinetuneConfig& config);

// The launcher split on spaces, each "{ranks}" replaced by `ranks`.
std::vector<std::string> LauncherWords(const std::string& launcher, int ranks);

}  // namespace baton::server
