#include "launch/cli/cli_common.h"

#include <cerrno>
#include <cstdlib>

namespace baton::cli {

void AddModelFlags(CLI::App& cmd, ModelFlags& flags) {
  cmd.add_option("--model", flags.model_dir, "Hugging Face model folder (config.json, *.safetensors, tokenizer.json)")
      ->capture_default_str();
  cmd.add_option("--threads", flags.threads, "CPU threads (0: all cores)");
  cmd.add_option("--kv-cache-mb", flags.kv_cache_mb, "KV cache capacity in MiB")->capture_default_str();
}

StatusOr<std::unique_ptr<ModelSession>> OpenSession(const ModelFlags& flags) {
  if (!(flags.kv_cache_mb > 0)) return Status::InvalidArgument("--kv-cache-mb must be positive");
  SessionOptions options;
  options.model_dir = flags.model_dir;
  options.threads = flags.threads;
  options.kv_cache_bytes = static_cast<size_t>(flags.kv_cache_mb * (1 << 20));
  options.show_progress = true;
  return ModelSession::Open(options);
}

StatusOr<std::vector<int32_t>> ParseIdList(const std::string& text, const std::string& flag) {
  std::vector<int32_t> ids;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    const std::string item = text.substr(start, end - start);
    char* stop = nullptr;
    errno = 0;
    const long long v = std::strtoll(item.c_str(), &stop, 10);
    if (item.empty() || *stop != '\0' || errno == ERANGE || v < INT32_MIN || v > INT32_MAX) {
      return Status::InvalidArgument(flag + ": '" + item + "' is not a token id (expected e.g. 1,2,3)");
    }
    ids.push_back(static_cast<int32_t>(v));
    start = end + 1;
  }
  return ids;
}

}  // namespace baton::cli
