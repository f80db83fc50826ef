// `baton make-model`: a random-weight model folder in Hugging Face layout,
// for benchmarks at real model sizes without downloading weights.
#include <filesystem>
#include <fstream>

#include "launch/cli/cli_common.h"
#include "runtime/checkpoint/random_checkpoint.h"

namespace baton::cli {
namespace {

struct MakeModelFlags {
  std::string arch;
  std::string shape;
  std::string config_file;
  std::string out;
  std::string dtype = "bf16";
  uint64_t seed = 0;
  std::string tokenizer = std::string(BATON_BUNDLED_MODEL) + "/tokenizer.json";
};

StatusOr<nlohmann::json> ReadConfigFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::NotFound("--config: cannot open '" + path + "'");
  nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return Status::InvalidArgument("--config: '" + path + "' is not a JSON object");
  return j;
}

Status RunMakeModel(const MakeModelFlags& f) {
  if (f.shape.empty() == f.config_file.empty()) {
    return Status::InvalidArgument("give exactly one of --shape NAME and --config FILE");
  }
  RandomCheckpointOptions options;
  if (!f.shape.empty()) {
    BATON_ASSIGN_OR_RETURN(options.config, BuiltinModelConfig(f.shape));
  } else {
    BATON_ASSIGN_OR_RETURN(options.config, ReadConfigFile(f.config_file));
  }
  if (!f.arch.empty()) {
    const nlohmann::json& t = options.config["model_type"];
    const std::string type = t.is_string() ? t.get<std::string>() : "";
    if (type.empty()) {
      options.config["model_type"] = f.arch;
    } else if (type != f.arch) {
      return Status::InvalidArgument("--arch " + f.arch + " contradicts the shape's model_type " + type);
    }
  }
  BATON_ASSIGN_OR_RETURN(options.dtype, ParseFloatDTypeFlag(f.dtype));
  options.seed = f.seed;
  options.out_dir = f.out;
  BATON_RETURN_IF_ERROR(WriteRandomCheckpoint(options));
  if (!f.tokenizer.empty()) {
    std::error_code ec;
    std::filesystem::copy_file(f.tokenizer, std::filesystem::path(f.out) / "tokenizer.json",
                               std::filesystem::copy_options::overwrite_existing, ec);
    if (ec) return Status::NotFound("--tokenizer: cannot copy '" + f.tokenizer + "': " + ec.message());
  }
  std::fprintf(stderr, "make-model: wrote %s\n", f.out.c_str());
  return Status::Ok();
}

}  // namespace

void RegisterMakeModelCommand(CLI::App& app, CommandRun& run) {
  auto flags = std::make_shared<MakeModelFlags>();
  CLI::App* cmd = app.add_subcommand("make-model", "Write a random-weight model in Hugging Face layout");
  cmd->add_option("--arch", flags->arch, "gpt2, llama, mistral or qwen2 (checked against the shape)");
  cmd->add_option("--shape", flags->shape, "Built-in shape, e.g. llama-3.2-1b, llama-3-8b, gpt2-124m");
  cmd->add_option("--config", flags->config_file, "A config.json to use instead of a built-in shape");
  cmd->add_option("--out", flags->out, "Output folder")->required();
  cmd->add_option("--dtype", flags->dtype, "f32, f16 or bf16")->capture_default_str();
  cmd->add_option("--seed", flags->seed, "Random seed")->capture_default_str();
  cmd->add_option("--tokenizer", flags->tokenizer, "tokenizer.json to copy in ('' for none)")->capture_default_str();
  cmd->callback([flags, &run] { run = [flags] { return RunMakeModel(*flags); }; });
}

}  // namespace baton::cli
