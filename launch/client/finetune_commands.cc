// `baton-client finetune create | get | list | watch | cancel`: the
// FineTuning service from the command line. create takes `baton finetune`'s
// flags (only those given are sent, so the server's binary applies its own
// defaults to the rest). --json prints a Job as protobuf JSON (snake_case)
// and watch's step lines as `baton finetune --json` prints them. watch (and
// create --watch) exits 0 only when the job SUCCEEDED.
#include <google/protobuf/util/json_util.h>

#include <cstdio>
#include <memory>

#include "launch/client/client_common.h"
#include "sdk/cpp/finetuning_client.h"

namespace baton::client_cli {
namespace {

struct CreateFlags {
  ServerFlags server;
  v1::CreateJobRequest request;
  bool watch = false, json = false;
  std::vector<std::function<void()>> apply;  // copy the flags that were given into `request`
};

template <typename T>
void AddField(CLI::App* cmd, CreateFlags& f, const std::string& flag, const std::string& help,
              std::function<void(v1::CreateJobRequest&, const T&)> set) {
  auto value = std::make_shared<T>();
  CLI::Option* option = cmd->add_option(flag, *value, help);
  f.apply.push_back([&f, option, value, set] {
    if (option->count() > 0) set(f.request, *value);
  });
}

void AddSwitch(CLI::App* cmd, CreateFlags& f, const std::string& flag, const std::string& help,
               std::function<void(v1::CreateJobRequest&)> set) {
  CLI::Option* option = cmd->add_flag(flag, help);
  f.apply.push_back([&f, option, set] {
    if (option->count() > 0) set(f.request);
  });
}

void AddJobFields(CLI::App* cmd, CreateFlags& f) {
  using R = v1::CreateJobRequest;
  AddField<std::string>(cmd, f, "--model", "Model folder on the server (default: the served model)",
                        [](R& r, const std::string& v) { r.set_model(v); });
  AddField<std::string>(cmd, f, "--data", "Training file, relative to the server's --finetune-dir",
                        [](R& r, const std::string& v) { r.set_data(v); });
  AddField<std::string>(cmd, f, "--out", "Output folder, relative to the server's --finetune-dir",
                        [](R& r, const std::string& v) { r.set_out(v); });
  AddField<int>(cmd, f, "--steps", "optimizer steps", [](R& r, const int& v) { r.set_steps(v); });
  AddField<double>(cmd, f, "--lr", "peak learning rate", [](R& r, const double& v) { r.set_lr(v); });
  AddField<int>(cmd, f, "--batch-size", "sequences per step", [](R& r, const int& v) { r.set_batch_size(v); });
  AddField<int>(cmd, f, "--seq-len", "tokens per sequence", [](R& r, const int& v) { r.set_seq_len(v); });
  AddField<std::string>(cmd, f, "--lr-schedule", "constant | cosine",
                        [](R& r, const std::string& v) { r.set_lr_schedule(v); });
  AddField<int>(cmd, f, "--warmup", "linear warmup steps", [](R& r, const int& v) { r.set_warmup(v); });
  AddField<double>(cmd, f, "--weight-decay", "AdamW weight decay",
                   [](R& r, const double& v) { r.set_weight_decay(v); });
  AddField<double>(cmd, f, "--grad-clip", "gradient-norm clip (0 = off)",
                   [](R& r, const double& v) { r.set_grad_clip(v); });
  AddField<uint64_t>(cmd, f, "--seed", "shuffle seed", [](R& r, const uint64_t& v) { r.set_seed(v); });
  AddSwitch(cmd, f, "--no-shuffle", "keep the file's order", [](R& r) { r.set_no_shuffle(true); });
  AddField<int>(cmd, f, "--micro-batch-size", "sequences per forward/backward",
                [](R& r, const int& v) { r.set_micro_batch_size(v); });
  AddField<int>(cmd, f, "--pp", "pipeline stages", [](R& r, const int& v) { r.set_pp(v); });
  AddField<int>(cmd, f, "--dp", "data-parallel replicas", [](R& r, const int& v) { r.set_dp(v); });
  AddField<int>(cmd, f, "--zero", "0 | 3", [](R& r, const int& v) { r.set_zero(v); });
  AddField<std::string>(cmd, f, "--schedule", "gpipe | 1f1b", [](R& r, const std::string& v) { r.set_schedule(v); });
  AddField<int>(cmd, f, "--micro-batches", "micro-batches per step",
                [](R& r, const int& v) { r.set_micro_batches(v); });
  AddSwitch(cmd, f, "--activation-checkpointing", "recompute activations in backward",
            [](R& r) { r.set_activation_checkpointing(true); });
  AddField<int>(cmd, f, "--checkpoint-every", "steps between checkpoints (in <out>/checkpoints)",
                [](R& r, const int& v) { r.set_checkpoint_every(v); });
  AddField<std::string>(cmd, f, "--resume", "checkpoint folder to resume from (in --finetune-dir)",
                        [](R& r, const std::string& v) { r.set_resume(v); });
}

StatusOr<std::string> JobJson(const v1::Job& job) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string json;
  const auto converted = google::protobuf::util::MessageToJsonString(job, &json, options);
  if (!converted.ok()) return Status::Internal("cannot print the job as JSON: " + converted.ToString());
  return json;
}

std::string StateName(v1::JobState state) {
  std::string name = v1::JobState_Name(state);
  return name.rfind("JOB_STATE_", 0) == 0 ? name.substr(10) : name;
}

Status PrintJob(const v1::Job& job, bool json) {
  if (json) {
    BATON_ASSIGN_OR_RETURN(std::string text, JobJson(job));
    std::printf("%s\n", text.c_str());
  } else {
    std::printf("%s  %s  step %d/%d  loss %.4f  lr %.3g  %.0f tok/s  out %s\n", job.id().c_str(),
                StateName(job.state()).c_str(), job.step(), job.total_steps(), job.loss(), job.lr(), job.tokens_per_s(),
                job.out().c_str());
    if (!job.error().empty()) std::printf("%s\n", job.error().c_str());
  }
  std::fflush(stdout);
  return Status::Ok();
}

// Streams the job's steps, prints its final state; ok only when it SUCCEEDED.
Status Watch(FineTuningClient& client, const std::string& id, const ServerFlags& server, bool json) {
  auto on_step = [json](const v1::StepEvent& e) {
    if (json) {
      std::printf("%s\n", Dump({{"step", e.step()},
                                {"loss", e.loss()},
                                {"lr", e.lr()},
                                {"grad_norm", e.grad_norm()},
                                {"tokens_per_s", e.tokens_per_s()},
                                {"eta_s", e.eta_s()}})
                              .c_str());
    } else {
      std::printf("step %d  loss %.4f  lr %.3g  grad_norm %.3f  %.0f tok/s  ETA %.0fs\n", e.step(), e.loss(), e.lr(),
                  e.grad_norm(), e.tokens_per_s(), e.eta_s());
    }
    std::fflush(stdout);
    return true;
  };
  BATON_ASSIGN_OR_RETURN(v1::Job job, client.WatchJob(id, on_step, server.call()));
  BATON_RETURN_IF_ERROR(PrintJob(job, json));
  if (job.state() == v1::JOB_STATE_SUCCEEDED) return Status::Ok();
  return Status::Internal("finetune: job " + id + " ended " + StateName(job.state()) +
                          (job.error().empty() ? "" : ": " + job.error()));
}

void RegisterCreate(CLI::App* group, CommandRun& run) {
  auto f = std::make_shared<CreateFlags>();
  CLI::App* cmd = group->add_subcommand("create", "Start a fine-tuning job (prints the job)");
  AddServerFlags(*cmd, f->server);
  AddJobFields(cmd, *f);
  cmd->add_flag("--watch", f->watch, "Then stream its steps until it ends (exit 0 only if it SUCCEEDED)");
  cmd->add_flag("--json", f->json, "Print the job (and steps) as JSON");
  cmd->callback([f, &run] {
    for (auto& apply : f->apply) apply();
    run = [f]() -> Status {
      FineTuningClient client(f->server.server);
      BATON_ASSIGN_OR_RETURN(v1::Job job, client.CreateJob(f->request, f->server.call()));
      BATON_RETURN_IF_ERROR(PrintJob(job, f->json));
      return f->watch ? Watch(client, job.id(), f->server, f->json) : Status::Ok();
    };
  });
}

// get, watch and cancel: one job id each.
void RegisterOnJob(CLI::App* group, CommandRun& run, const std::string& name, const std::string& help) {
  struct Flags {
    ServerFlags server;
    std::string id;
    bool json = false;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* cmd = group->add_subcommand(name, help);
  AddServerFlags(*cmd, f->server);
  cmd->add_option("id", f->id, "Job id (from create or list)")->required();
  cmd->add_flag("--json", f->json, "Print JSON");
  cmd->callback([f, name, &run] {
    run = [f, name]() -> Status {
      FineTuningClient client(f->server.server);
      if (name == "watch") return Watch(client, f->id, f->server, f->json);
      BATON_ASSIGN_OR_RETURN(v1::Job job, name == "get" ? client.GetJob(f->id, f->server.call())
                                                        : client.CancelJob(f->id, f->server.call()));
      return PrintJob(job, f->json);
    };
  });
}

void RegisterList(CLI::App* group, CommandRun& run) {
  struct Flags {
    ServerFlags server;
    bool json = false;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* cmd = group->add_subcommand("list", "Every job the server has run or queued, oldest first");
  AddServerFlags(*cmd, f->server);
  cmd->add_flag("--json", f->json, "One JSON job per line");
  cmd->callback([f, &run] {
    run = [f]() -> Status {
      FineTuningClient client(f->server.server);
      BATON_ASSIGN_OR_RETURN(std::vector<v1::Job> jobs, client.ListJobs(f->server.call()));
      for (const v1::Job& job : jobs) BATON_RETURN_IF_ERROR(PrintJob(job, f->json));
      return Status::Ok();
    };
  });
}

}  // namespace

void RegisterFinetuneCommands(CLI::App& app, CommandRun& run) {
  CLI::App* group = app.add_subcommand("finetune", "Fine-tuning jobs on the server (FineTuning service)");
  group->require_subcommand(1);
  RegisterCreate(group, run);
  RegisterOnJob(group, run, "get", "Print a job's state");
  RegisterOnJob(group, run, "watch", "Stream a job's steps (past ones first) until it ends");
  RegisterOnJob(group, run, "cancel", "Cancel a job; returns once its process is gone");
  RegisterList(group, run);
}

}  // namespace baton::client_cli
