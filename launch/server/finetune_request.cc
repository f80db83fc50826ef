#include "launch/server/finetune_request.h"

#include <charconv>
#include <cmath>
#include <sstream>

#include "runtime/core/path_confinement.h"

namespace baton::server {
namespace {

namespace fs = std::filesystem;

// Generous bounds: they only keep absurd values (and int overflow in pp * dp)
// away from the binary, which checks what it can do itself.
constexpr int kMaxSteps = 100'000'000;
constexpr int kMaxRanks = 4096;

// Shortest text that parses back to the same double.
std::string Number(double v) {
  char buf[64];
  const auto result = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, result.ptr);
}

Status Bad(const std::string& field, const std::string& why) { return Status::InvalidArgument(field + ": " + why); }

Status AtLeast(bool set, int64_t value, int64_t least, const std::string& field, int64_t most = INT32_MAX) {
  if (!set || (value >= least && value <= most)) return Status::Ok();
  return Bad(field, "must be in [" + std::to_string(least) + ", " + std::to_string(most) + "] (got " +
                        std::to_string(value) + ")");
}

Status FiniteAtLeast(bool set, double value, double least, bool strictly, const std::string& field) {
  if (!set || (std::isfinite(value) && (strictly ? value > least : value >= least))) return Status::Ok();
  return Bad(field, std::string("must be a finite number ") + (strictly ? "> " : ">= ") + Number(least) + " (got " +
                        Number(value) + ")");
}

Status OneOf(bool set, const std::string& value, std::initializer_list<const char*> allowed, const std::string& field) {
  if (!set) return Status::Ok();
  std::string names;
  for (const char* a : allowed) {
    if (value == a) return Status::Ok();
    names += names.empty() ? "" : " | ";
    names += a;
  }
  return Bad(field, "must be " + names + " (got '" + value + "')");
}

Status CheckHyperparameters(const v1::CreateJobRequest& r) {
  BATON_RETURN_IF_ERROR(AtLeast(r.has_steps(), r.steps(), 1, "steps", kMaxSteps));
  BATON_RETURN_IF_ERROR(FiniteAtLeast(r.has_lr(), r.lr(), 0, true, "lr"));
  BATON_RETURN_IF_ERROR(AtLeast(r.has_batch_size(), r.batch_size(), 1, "batch_size"));
  BATON_RETURN_IF_ERROR(AtLeast(r.has_seq_len(), r.seq_len(), 2, "seq_len"));
  BATON_RETURN_IF_ERROR(OneOf(r.has_lr_schedule(), r.lr_schedule(), {"constant", "cosine"}, "lr_schedule"));
  BATON_RETURN_IF_ERROR(AtLeast(r.has_warmup(), r.warmup(), 0, "warmup"));
  BATON_RETURN_IF_ERROR(FiniteAtLeast(r.has_weight_decay(), r.weight_decay(), 0, false, "weight_decay"));
  BATON_RETURN_IF_ERROR(FiniteAtLeast(r.has_grad_clip(), r.grad_clip(), 0, false, "grad_clip"));
  BATON_RETURN_IF_ERROR(AtLeast(r.has_micro_batch_size(), r.micro_batch_size(), 1, "micro_batch_size"));
  if (r.has_micro_batch_size() && r.has_batch_size() && r.batch_size() % r.micro_batch_size() != 0) {
    return Bad("micro_batch_size",
               std::to_string(r.micro_batch_size()) + " does not divide batch_size " + std::to_string(r.batch_size()));
  }
  BATON_RETURN_IF_ERROR(AtLeast(r.has_pp(), r.pp(), 1, "pp", kMaxRanks));
  BATON_RETURN_IF_ERROR(AtLeast(r.has_dp(), r.dp(), 1, "dp", kMaxRanks));
  if (r.has_zero() && r.zero() != 0 && r.zero() != 3)
    return Bad("zero", "must be 0 or 3 (got " + std::to_string(r.zero()) + ")");
  BATON_RETURN_IF_ERROR(OneOf(r.has_schedule(), r.schedule(), {"gpipe", "1f1b"}, "schedule"));
  BATON_RETURN_IF_ERROR(AtLeast(r.has_micro_batches(), r.micro_batches(), 1, "micro_batches"));
  BATON_RETURN_IF_ERROR(AtLeast(r.has_checkpoint_every(), r.checkpoint_every(), 0, "checkpoint_every"));
  return Status::Ok();
}

// The flags of the set fields, in the proto's order.
void AppendFlags(const v1::CreateJobRequest& r, const fs::path& resume, std::vector<std::string>& argv) {
  auto flag = [&argv](const char* name, std::string value) {
    argv.emplace_back(name);
    argv.push_back(std::move(value));
  };
  if (r.has_steps()) flag("--steps", std::to_string(r.steps()));
  if (r.has_lr()) flag("--lr", Number(r.lr()));
  if (r.has_batch_size()) flag("--batch-size", std::to_string(r.batch_size()));
  if (r.has_seq_len()) flag("--seq-len", std::to_string(r.seq_len()));
  if (r.has_lr_schedule()) flag("--lr-schedule", r.lr_schedule());
  if (r.has_warmup()) flag("--warmup", std::to_string(r.warmup()));
  if (r.has_weight_decay()) flag("--weight-decay", Number(r.weight_decay()));
  if (r.has_grad_clip()) flag("--grad-clip", Number(r.grad_clip()));
  if (r.has_seed()) flag("--seed", std::to_string(r.seed()));
  if (r.has_no_shuffle() && r.no_shuffle()) argv.emplace_back("--no-shuffle");
  if (r.has_micro_batch_size()) flag("--micro-batch-size", std::to_string(r.micro_batch_size()));
  if (r.has_pp()) flag("--pp", std::to_string(r.pp()));
  if (r.has_dp()) flag("--dp", std::to_string(r.dp()));
  if (r.has_zero()) flag("--zero", std::to_string(r.zero()));
  if (r.has_schedule()) flag("--schedule", r.schedule());
  if (r.has_micro_batches()) flag("--micro-batches", std::to_string(r.micro_batches()));
  if (r.has_activation_checkpointing() && r.activation_checkpointing()) argv.emplace_back("--activation-checkpointing");
  if (r.has_checkpoint_every()) flag("--checkpoint-every", std::to_string(r.checkpoint_every()));
  if (r.has_resume()) flag("--resume", resume.string());
}

}  // namespace

std::vector<std::string> LauncherWords(const std::string& launcher, int ranks) {
  std::vector<std::string> words;
  std::istringstream in(launcher);
  for (std::string word; in >> word;) {
    for (size_t at = word.find("{ranks}"); at != std::string::npos; at = word.find("{ranks}", at)) {
      const std::string n = std::to_string(ranks);
      word.replace(at, 7, n);
      at += n.size();
    }
    words.push_back(std::move(word));
  }
  return words;
}

StatusOr<FinetunePlan> PlanFinetuneJob(const v1::CreateJobRequest& r, const FinetuneConfig& config) {
  BATON_RETURN_IF_ERROR(CheckHyperparameters(r));
  const int64_t ranks = int64_t{r.has_pp() ? r.pp() : 1} * (r.has_dp() ? r.dp() : 1);
  if (ranks > kMaxRanks)
    return Bad("dp", "pp * dp = " + std::to_string(ranks) + " ranks is more than " + std::to_string(kMaxRanks));
  if (ranks > 1 && LauncherWords(config.launcher, 1).empty()) {
    return Status::FailedPrecondition(std::string(r.has_pp() && r.pp() > 1 ? "pp" : "dp") +
                                      ": pp * dp = " + std::to_string(ranks) +
                                      " ranks need a launcher; this server runs jobs on one rank (start it with "
                                      "--finetune-launcher, e.g. \"mpirun -np {ranks}\")");
  }

  const std::string model = r.model().empty() ? config.default_model : r.model();
  std::error_code error;
  if (!fs::is_regular_file(fs::path(model) / "config.json", error)) {
    return Bad("model", "'" + model + "' is not a model folder (no config.json)");
  }
  BATON_ASSIGN_OR_RETURN(fs::path data, ConfinePath(config.dir, r.data(), "data"));
  if (!fs::is_regular_file(data, error)) {
    return Bad("data", "'" + r.data() + "' is not a file in the fine-tuning folder (" + data.string() + ")");
  }
  BATON_ASSIGN_OR_RETURN(fs::path out, ConfinePath(config.dir, r.out(), "out"));
  if (fs::exists(out, error) && !fs::is_directory(out, error)) {
    return Bad("out", "'" + r.out() + "' exists and is not a folder");
  }
  fs::path resume;
  if (r.has_resume()) {
    BATON_ASSIGN_OR_RETURN(resume, ConfinePath(config.dir, r.resume(), "resume"));
    if (!fs::is_directory(resume, error)) return Bad("resume", "'" + r.resume() + "' is not a checkpoint folder");
  }

  FinetunePlan plan;
  plan.out = out;
  plan.total_steps = r.has_steps() ? r.steps() : 0;
  plan.argv = LauncherWords(config.launcher, static_cast<int>(ranks));
  for (const std::string& word : {config.baton_binary, std::string("finetune"), std::string("--json"),
                                  std::string("--model"), fs::absolute(model, error).string(), std::string("--data"),
                                  data.string(), std::string("--out"), out.string()}) {
    plan.argv.push_back(word);
  }
  AppendFlags(r, resume, plan.argv);
  return plan;
}

}  // namespace baton::server
