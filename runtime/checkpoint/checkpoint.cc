#include "runtime/checkpoint/checkpoint.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace baton {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kSingleFile = "model.safetensors";
constexpr std::string_view kIndexFile = "model.safetensors.index.json";
constexpr std::string_view kPrefixes[] = {"model.", "transformer."};

bool IsRegularFile(const std::string& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec);
}

// Shards are plain file names beside the index; anything else would let an
// index read files outside the model folder.
bool IsPlainFileName(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos;
}

}  // namespace

StatusOr<Checkpoint> Checkpoint::Open(const std::string& model_dir) {
  if (IsRegularFile(model_dir) && model_dir.ends_with(".safetensors")) return OpenFile(model_dir);
  std::string single = (fs::path(model_dir) / kSingleFile).string();
  if (IsRegularFile(single)) return OpenFile(single);
  std::string index = (fs::path(model_dir) / kIndexFile).string();
  if (IsRegularFile(index)) return OpenIndex(model_dir, index);
  std::error_code ec;
  if (!fs::is_directory(model_dir, ec)) return Status::NotFound(model_dir + ": no such model folder");
  return Status::NotFound(model_dir + ": neither " + std::string(kSingleFile) + " nor " + std::string(kIndexFile) +
                          " is there");
}

StatusOr<Checkpoint> Checkpoint::OpenFile(const std::string& path) {
  BATON_ASSIGN_OR_RETURN(std::shared_ptr<SafetensorsFile> file, SafetensorsFile::Open(path));
  Checkpoint c;
  c.source_ = path;
  c.AddFile(file);
  return c;
}

void Checkpoint::AddFile(const std::shared_ptr<SafetensorsFile>& file) {
  files_.push_back(file);
  for (const TensorInfo& t : file->tensors()) entries_[t.name] = Entry{file.get(), &t, {}};
  for (const auto& [name, dtype] : file->unsupported_tensors()) entries_[name] = Entry{file.get(), nullptr, dtype};
}

StatusOr<Checkpoint> Checkpoint::OpenIndex(const std::string& model_dir, const std::string& index_path) {
  std::ifstream in(index_path, std::ios::binary);
  if (!in.is_open()) return Status::DataLoss(index_path + ": cannot open");
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json index = nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (index.is_discarded()) return Status::DataLoss(index_path + ": not valid JSON");
  if (!index.is_object()) return Status::DataLoss(index_path + ": not a JSON object");
  auto map = index.find("weight_map");
  if (map == index.end()) return Status::DataLoss(index_path + ": field 'weight_map' is missing");
  if (!map->is_object()) return Status::DataLoss(index_path + ": field 'weight_map' is not an object");

  Checkpoint c;
  c.source_ = index_path;
  std::map<std::string, std::shared_ptr<SafetensorsFile>> shards;
  for (const auto& [name, value] : map->items()) {
    if (!value.is_string() || !IsPlainFileName(value.get<std::string>())) {
      return Status::DataLoss(index_path + ": tensor '" + name + "' maps to " + value.dump() +
                              ", not a shard file name beside the index");
    }
    const std::string shard = value.get<std::string>();
    auto it = shards.find(shard);
    if (it == shards.end()) {
      StatusOr<std::shared_ptr<SafetensorsFile>> file = SafetensorsFile::Open((fs::path(model_dir) / shard).string());
      if (!file.ok()) {
        return file.status().WithContext(index_path + ": shard '" + shard + "' (of tensor '" + name + "')");
      }
      it = shards.emplace(shard, *file).first;
      c.files_.push_back(*file);
    }
    const SafetensorsFile& file = *it->second;
    if (const TensorInfo* info = file.Find(name)) {
      c.entries_[name] = Entry{&file, info, {}};
    } else if (auto u = file.unsupported_tensors().find(name); u != file.unsupported_tensors().end()) {
      c.entries_[name] = Entry{&file, nullptr, u->second};
    } else {
      return Status::DataLoss(index_path + ": tensor '" + name + "' is listed in shard '" + shard +
                              "', which does not contain it");
    }
  }
  return c;
}

const std::pair<const std::string, Checkpoint::Entry>* Checkpoint::Resolve(std::string_view name) const {
  auto lookup = [this](std::string_view n) -> const std::pair<const std::string, Entry>* {
    auto it = entries_.find(n);
    return it == entries_.end() ? nullptr : &*it;
  };
  if (auto* e = lookup(name)) return e;
  for (std::string_view prefix : kPrefixes) {
    if (name.starts_with(prefix)) {
      if (auto* e = lookup(name.substr(prefix.size()))) return e;
    }
  }
  for (std::string_view prefix : kPrefixes) {
    if (auto* e = lookup(std::string(prefix) + std::string(name))) return e;
  }
  return nullptr;
}

bool Checkpoint::Has(std::string_view name) const { return Resolve(name) != nullptr; }

const TensorInfo* Checkpoint::Find(std::string_view name) const {
  auto* e = Resolve(name);
  return e == nullptr ? nullptr : e->second.info;
}

StatusOr<Tensor> Checkpoint::Get(std::string_view name) const {
  auto* e = Resolve(name);
  if (e == nullptr) return Status::NotFound(source_ + ": tensor '" + std::string(name) + "' is missing");
  const Entry& entry = e->second;
  if (entry.info == nullptr) {
    return Status::Unimplemented(entry.file->path() + ": tensor '" + e->first + "' has dtype " +
                                 entry.unsupported_dtype + ", which Baton cannot load");
  }
  return entry.file->View(*entry.info);
}

StatusOr<Tensor> Checkpoint::GetF32(std::string_view name, const Shape& expected_shape) const {
  BATON_ASSIGN_OR_RETURN(Tensor t, Get(name));
  auto* e = Resolve(name);
  const std::string& where = e->second.file->path();
  if (t.shape() != expected_shape) {
    return Status::DataLoss(where + ": tensor '" + e->first + "' has shape " + ShapeToString(t.shape()) +
                            ", expected " + ShapeToString(expected_shape));
  }
  if (!IsFloatDType(t.dtype())) {
    return Status::InvalidArgument(where + ": tensor '" + e->first + "' has dtype " + DTypeName(t.dtype()) +
                                   ", expected a float type (F32, F16, BF16)");
  }
  return t.ToF32();
}

std::vector<std::string> Checkpoint::TensorNames() const {
  std::vector<std::string> names;
  names.reserve(entries_.size());
  for (const auto& [name, entry] : entries_) names.push_back(name);
  return names;
}

uint64_t Checkpoint::TotalBytes() const {
  uint64_t total = 0;
  for (const auto& [name, entry] : entries_) {
    if (entry.info != nullptr) total += entry.info->nbytes;
  }
  return total;
}

}  // namespace baton
