#include "runtime/training/train_checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "runtime/checkpoint/safetensors_file.h"
#include "runtime/checkpoint/safetensors_writer.h"

namespace baton {
namespace {

namespace fs = std::filesystem;

constexpr const char* kMetadataKey = "baton_train_checkpoint";  // in the rank file's __metadata__
constexpr const char* kFormat = "baton-train-checkpoint";
constexpr int kVersion = 1;

std::string StepDir(const std::string& dir, int64_t step) { return dir + "/step-" + std::to_string(step); }
std::string RankFile(int rank, int world) {
  return "rank-" + std::to_string(rank) + "-of-" + std::to_string(world) + ".safetensors";
}

Status IoError(const std::string& path, const char* what, int err) {
  return Status::Internal(path + ": " + what + ": " + std::strerror(err));
}

Status CheckStepRank(int64_t step, int rank, int world) {
  if (step < 0)
    return Status::InvalidArgument("checkpoint step must not be negative (got " + std::to_string(step) + ")");
  if (world < 1 || rank < 0 || rank >= world) {
    return Status::InvalidArgument("checkpoint rank " + std::to_string(rank) + " is not in a world of " +
                                   std::to_string(world) + " ranks");
  }
  return Status::Ok();
}

// A hash of the bytes, to tell a damaged tensor from an intact one. Each
// 8-byte word goes through a bijection of the state (xor, multiply by an
// odd number, xorshift), so any change confined to one word always changes
// the result; the xorshift carries high bits down so that damage to, say,
// float exponents alone is not left to the top half. Words are read in host
// byte order: checkpoints move between little-endian machines only.
uint64_t Checksum(const void* data, size_t nbytes) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t h = 0xcbf29ce484222325ULL ^ nbytes;
  auto mix = [&h](uint64_t w) {
    h = (h ^ w) * 0x100000001b3ULL;
    h ^= h >> 29;
  };
  size_t i = 0;
  for (; i + 8 <= nbytes; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    mix(w);
  }
  if (i < nbytes) {
    uint64_t w = 0;
    std::memcpy(&w, p + i, nbytes - i);
    mix(w);
  }
  return h;
}

std::string Hex(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// Makes an already written file or folder durable (its data, or its entries).
Status Sync(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), O_RDONLY | (directory ? O_DIRECTORY : 0));
  if (fd < 0) return IoError(path, "cannot open to sync", errno);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  return rc == 0 ? Status::Ok() : IoError(path, "fsync failed", err);
}

// Writes `content` to path.tmp, syncs it and renames it over `path`, then
// syncs the folder: readers see the old file or the whole new one.
Status WriteFileAtomically(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return IoError(tmp, "cannot create", errno);
  size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return IoError(tmp, "write failed", err);
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return IoError(tmp, "fsync/close failed", err);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return IoError(path, "rename failed", err);
  }
  return Sync(fs::path(path).parent_path().string(), /*directory=*/true);
}

// The whole of a small file; NotFound if it does not exist.
StatusOr<std::string> ReadSmallFile(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return Status::NotFound(path + ": does not exist");
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound(path + ": cannot open");
  std::stringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) return Status::DataLoss(path + ": read failed");
  return buffer.str();
}

// Parses a non-negative decimal that fills all of `s` (surrounding
// whitespace aside); nullopt for anything else.
std::optional<int64_t> ParseStep(std::string s) {
  const size_t b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  if (b == std::string::npos) return std::nullopt;
  s = s.substr(b, e - b + 1);
  if (s.size() > 18 || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  return std::stoll(s);
}

// meta.json of a committed step, validated; NotFound if the step is not committed.
StatusOr<nlohmann::json> ReadCommitMeta(const std::string& dir, int64_t step) {
  const std::string path = StepDir(dir, step) + "/meta.json";
  auto text = ReadSmallFile(path);
  if (!text.ok()) {
    if (text.status().code() != StatusCode::kNotFound) return text.status();
    return Status::NotFound(StepDir(dir, step) + ": not a committed checkpoint (meta.json is missing)");
  }
  nlohmann::json doc = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) return Status::DataLoss(path + ": not a JSON object");
  if (doc.value("format", "") != kFormat) return Status::DataLoss(path + ": field 'format' is not '" + kFormat + "'");
  if (!doc.contains("step") || !doc["step"].is_number_integer() || doc["step"].get<int64_t>() != step) {
    return Status::DataLoss(path + ": field 'step' is not " + std::to_string(step));
  }
  if (!doc.contains("world_size") || !doc["world_size"].is_number_integer() || doc["world_size"].get<int64_t>() < 1) {
    return Status::DataLoss(path + ": field 'world_size' is not a positive integer");
  }
  if (!doc.contains("job")) return Status::DataLoss(path + ": field 'job' is missing");
  return doc;
}

// (rank, world) of a file named exactly RankFile(rank, world), else nullopt.
std::optional<std::pair<int, int>> ParseRankFile(const std::string& name) {
  const std::string prefix = "rank-", suffix = ".safetensors";
  if (name.size() <= prefix.size() + suffix.size() || name.rfind(prefix, 0) != 0 ||
      name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) {
    return std::nullopt;
  }
  const std::string middle = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  const size_t of = middle.find("-of-");
  if (of == std::string::npos) return std::nullopt;
  const std::optional<int64_t> rank = ParseStep(middle.substr(0, of)), world = ParseStep(middle.substr(of + 4));
  if (!rank || !world || *world < 1 || *world > std::numeric_limits<int>::max() || *rank >= *world) {
    return std::nullopt;
  }
  if (name != RankFile(static_cast<int>(*rank), static_cast<int>(*world))) return std::nullopt;  // "rank-01-..."
  return std::make_pair(static_cast<int>(*rank), static_cast<int>(*world));
}

// Rank files in a step folder: world size -> ranks present.
std::map<int, std::set<int>> ListRankFiles(const std::string& step_dir) {
  std::map<int, std::set<int>> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(step_dir, ec)) {
    const auto parsed = ParseRankFile(entry.path().filename().string());
    if (parsed.has_value()) out[parsed->second].insert(parsed->first);
  }
  return out;
}

// The step-N folders of `dir`, ascending.
std::vector<int64_t> ListSteps(const std::string& dir) {
  std::vector<int64_t> steps;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("step-", 0) != 0 || !entry.is_directory(ec)) continue;
    const std::optional<int64_t> step = ParseStep(name.substr(5));
    if (step.has_value() && name == "step-" + std::to_string(*step)) steps.push_back(*step);
  }
  std::sort(steps.begin(), steps.end());
  return steps;
}

Status CheckTensor(const std::string& name, const Tensor& t) {
  if (t.device() != Device::kCpu) {
    return Status::InvalidArgument("checkpoint tensor '" + name + "' is on " + DeviceName(t.device()) +
                                   "; copy it to the host first");
  }
  if (!t.defined()) return Status::InvalidArgument("checkpoint tensor '" + name + "' has no data");
  return Status::Ok();
}

}  // namespace

Status SaveRankCheckpoint(const std::string& dir, int64_t step, int rank, int world, const RankTrainState& state) {
  BATON_RETURN_IF_ERROR(CheckStepRank(step, rank, world));
  const std::string step_dir = StepDir(dir, step);
  std::error_code ec;
  if (fs::exists(step_dir + "/meta.json", ec)) {
    return Status::FailedPrecondition(step_dir + " is a committed checkpoint; refusing to overwrite it");
  }
  std::error_code mkdir_ec;
  fs::create_directories(step_dir, mkdir_ec);  // every rank races to create it: an existing folder is fine
  if (!fs::is_directory(step_dir, ec)) return Status::Internal(step_dir + ": cannot create: " + mkdir_ec.message());

  std::vector<TensorDecl> decls;
  nlohmann::json checksums = nlohmann::json::object();
  for (const auto& [name, t] : state.tensors) {
    BATON_RETURN_IF_ERROR(CheckTensor(name, t));
    decls.push_back({name, t.dtype(), t.shape()});
    checksums[name] = Hex(Checksum(t.raw(), t.nbytes()));
  }
  const nlohmann::json header = {{"version", kVersion}, {"step", step},       {"rank", rank},
                                 {"world", world},      {"meta", state.meta}, {"checksums", checksums}};
  std::string header_text;
  try {
    header_text = header.dump();
  } catch (const nlohmann::json::exception& e) {  // a string that is not UTF-8
    return Status::InvalidArgument("checkpoint meta of rank " + std::to_string(rank) +
                                   " cannot be encoded: " + e.what());
  }

  const std::string path = step_dir + "/" + RankFile(rank, world);
  BATON_ASSIGN_OR_RETURN(
      std::unique_ptr<SafetensorsWriter> writer,
      SafetensorsWriter::Create(path, std::move(decls), {{"format", "pt"}, {kMetadataKey, header_text}}));
  for (const auto& [name, t] : state.tensors) BATON_RETURN_IF_ERROR(writer->WriteTensor(name, t));
  BATON_RETURN_IF_ERROR(writer->Finish());
  // Durable before rank 0 commits: `latest` must never point at data still in a page cache.
  BATON_RETURN_IF_ERROR(Sync(path, /*directory=*/false));
  BATON_RETURN_IF_ERROR(Sync(step_dir, /*directory=*/true));
  return Sync(dir, /*directory=*/true);
}

Status CommitCheckpoint(const std::string& dir, int64_t step, const nlohmann::json& job_meta) {
  BATON_RETURN_IF_ERROR(CheckStepRank(step, 0, 1));
  const std::string step_dir = StepDir(dir, step);
  const std::map<int, std::set<int>> files = ListRankFiles(step_dir);
  if (files.empty()) return Status::FailedPrecondition(step_dir + ": no rank saved this step; nothing to commit");
  if (files.size() > 1) {
    return Status::FailedPrecondition(step_dir + ": holds rank files of world sizes " +
                                      std::to_string(files.begin()->first) + " and " +
                                      std::to_string(files.rbegin()->first) + "; remove the stale ones");
  }
  const int world = files.begin()->first;
  const std::set<int>& ranks = files.begin()->second;
  if (static_cast<int>(ranks.size()) != world) {
    std::string missing;
    for (int r = 0; r < world; ++r) {
      if (ranks.count(r) != 0) continue;
      if (!missing.empty()) missing += ", ";
      missing += RankFile(r, world);
    }
    return Status::FailedPrecondition(step_dir + ": cannot commit, missing " + missing);
  }
  const nlohmann::json doc = {
      {"format", kFormat}, {"version", kVersion}, {"step", step}, {"world_size", world}, {"job", job_meta}};
  std::string text;
  try {
    text = doc.dump(2) + "\n";
  } catch (const nlohmann::json::exception& e) {
    return Status::InvalidArgument("checkpoint job meta cannot be encoded: " + std::string(e.what()));
  }
  BATON_RETURN_IF_ERROR(WriteFileAtomically(step_dir + "/meta.json", text));
  return WriteFileAtomically(dir + "/latest", std::to_string(step) + "\n");
}

StatusOr<int64_t> LatestCheckpointStep(const std::string& dir) {
  const std::string path = dir + "/latest";
  auto text = ReadSmallFile(path);
  if (!text.ok()) {
    if (text.status().code() != StatusCode::kNotFound) return text.status();
    return Status::NotFound(dir + ": no committed checkpoint (no 'latest' file)");
  }
  const std::optional<int64_t> step = ParseStep(*text);
  if (!step.has_value()) return Status::DataLoss(path + ": expected a step number, got '" + *text + "'");
  std::error_code ec;
  if (!fs::exists(StepDir(dir, *step) + "/meta.json", ec)) {
    return Status::DataLoss(path + " names step " + std::to_string(*step) + " but " + StepDir(dir, *step) +
                            "/meta.json is missing");
  }
  return *step;
}

StatusOr<nlohmann::json> LoadCheckpointMeta(const std::string& dir, int64_t step) {
  BATON_ASSIGN_OR_RETURN(nlohmann::json doc, ReadCommitMeta(dir, step));
  return doc["job"];
}

StatusOr<RankTrainState> LoadRankCheckpoint(const std::string& dir, int64_t step, int rank, int world) {
  BATON_RETURN_IF_ERROR(CheckStepRank(step, rank, world));
  BATON_ASSIGN_OR_RETURN(nlohmann::json doc, ReadCommitMeta(dir, step));
  const int64_t saved_world = doc["world_size"].get<int64_t>();
  if (saved_world != world) {
    return Status::InvalidArgument(StepDir(dir, step) + " was saved by " + std::to_string(saved_world) +
                                   " ranks but this job has " + std::to_string(world) +
                                   "; resume with the same pipeline x data-parallel layout");
  }
  const std::string path = StepDir(dir, step) + "/" + RankFile(rank, world);
  BATON_ASSIGN_OR_RETURN(std::shared_ptr<SafetensorsFile> file, SafetensorsFile::Open(path));
  auto bad = [&path](const std::string& what) { return Status::DataLoss(path + ": " + what); };
  if (!file->unsupported_tensors().empty()) {
    return bad("tensor '" + file->unsupported_tensors().begin()->first + "' has dtype " +
               file->unsupported_tensors().begin()->second + ", which a training checkpoint never holds");
  }
  const auto it = file->metadata().find(kMetadataKey);
  if (it == file->metadata().end()) return bad(std::string("__metadata__ has no '") + kMetadataKey + "'");
  const nlohmann::json header = nlohmann::json::parse(it->second, nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object())
    return bad(std::string("__metadata__.") + kMetadataKey + " is not JSON");
  const auto field_is = [&header](const char* key, int64_t want) {
    return header.contains(key) && header[key].is_number_integer() && header[key].get<int64_t>() == want;
  };
  if (!field_is("step", step) || !field_is("rank", rank) || !field_is("world", world)) {
    return bad("holds step " + header.value("step", nlohmann::json()).dump() + ", rank " +
               header.value("rank", nlohmann::json()).dump() + " of " + header.value("world", nlohmann::json()).dump() +
               ", not the file its name says");
  }
  if (!header.contains("checksums") || !header["checksums"].is_object() || !header.contains("meta")) {
    return bad("its checkpoint header lacks 'checksums' or 'meta'");
  }
  const nlohmann::json& checksums = header["checksums"];
  if (checksums.size() != file->tensors().size()) {
    return bad("lists " + std::to_string(checksums.size()) + " checksums for " +
               std::to_string(file->tensors().size()) + " tensors");
  }

  RankTrainState state;
  state.meta = header["meta"];
  for (const TensorInfo& info : file->tensors()) {
    Tensor copy = file->View(info).Clone();
    const auto sum = checksums.find(info.name);
    if (sum == checksums.end() || !sum->is_string()) return bad("tensor '" + info.name + "' has no checksum");
    if (sum->get<std::string>() != Hex(Checksum(copy.raw(), copy.nbytes()))) {
      return bad("tensor '" + info.name + "' is corrupt (checksum mismatch)");
    }
    state.tensors.emplace_back(info.name, std::move(copy));
  }
  return state;
}

Status PruneCheckpoints(const std::string& dir, int keep) {
  if (keep < 1) return Status::InvalidArgument("keep must be at least 1 (got " + std::to_string(keep) + ")");
  auto latest = LatestCheckpointStep(dir);
  if (!latest.ok()) return latest.status().code() == StatusCode::kNotFound ? Status::Ok() : latest.status();
  const std::vector<int64_t> steps = ListSteps(dir);
  int kept = 0;
  for (auto it = steps.rbegin(); it != steps.rend(); ++it) {
    if (*it > *latest) continue;
    const std::string step_dir = StepDir(dir, *it);
    std::error_code ec;
    const bool committed = fs::exists(step_dir + "/meta.json", ec);
    if (committed && kept < keep) {
      ++kept;
      continue;
    }
    if (*it == *latest) continue;  // unreachable with keep >= 1, but never delete what `latest` names
    // Un-commit first, so an interrupted prune leaves an incomplete folder, never a half-deleted committed one.
    if (committed && !fs::remove(step_dir + "/meta.json", ec) && ec) {
      return Status::Internal(step_dir + "/meta.json: cannot remove: " + ec.message());
    }
    fs::remove_all(step_dir, ec);
    if (ec) return Status::Internal(step_dir + ": cannot remove: " + ec.message());
  }
  return Status::Ok();
}

}  // namespace baton
