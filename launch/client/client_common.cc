#include "launch/client/client_common.h"

#include <cerrno>
#include <cstdlib>

namespace baton::client_cli {

void AddServerFlags(CLI::App& cmd, ServerFlags& flags) {
  cmd.add_option("--server", flags.server, "baton-server address, HOST:PORT")->capture_default_str();
  cmd.add_option("--timeout", flags.timeout_seconds, "Deadline of each call in seconds (0 = none)")
      ->check(CLI::NonNegativeNumber);
}

StatusOr<std::vector<int32_t>> ParseIds(const std::string& text, const std::string& flag) {
  std::vector<int32_t> ids;
  size_t begin = 0;
  while (begin <= text.size()) {
    size_t end = text.find(',', begin);
    if (end == std::string::npos) end = text.size();
    const std::string item = text.substr(begin, end - begin);
    char* rest = nullptr;
    errno = 0;
    const long value = std::strtol(item.c_str(), &rest, 10);
    if (item.empty() || *rest != '\0' || errno != 0 || value < INT32_MIN || value > INT32_MAX) {
      return Status::InvalidArgument(flag + ": '" + item + "' is not a token id (expected e.g. 1,2,3)");
    }
    ids.push_back(static_cast<int32_t>(value));
    begin = end + 1;
  }
  return ids;
}

std::string Dump(const nlohmann::json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

const char* FinishReasonName(v1::FinishReason reason) {
  switch (reason) {
    case v1::FINISH_REASON_LENGTH:
      return "length";
    case v1::FINISH_REASON_STOP:
      return "stop";
    case v1::FINISH_REASON_EOS:
      return "eos";
    case v1::FINISH_REASON_CANCELLED:
      return "cancelled";
    case v1::FINISH_REASON_ERROR:
      return "error";
    default:
      return "unspecified";
  }
}

}  // namespace baton::client_cli
