#include "runtime/checkpoint/safetensors_writer.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

namespace baton {
namespace {

// Which code a failed system call deserves: a full disk is not the caller's
// fault, a missing or read-only directory is something the user can fix.
Status IoError(const std::string& path, const std::string& what, int err) {
  std::string msg = path + ": " + what + ": " + std::strerror(err);
  switch (err) {
    case ENOSPC:
    case EDQUOT:
      return Status::ResourceExhausted(msg);
    case ENOENT:
    case ENOTDIR:
    case EACCES:
    case EPERM:
    case EROFS:
    case EISDIR:
      return Status::InvalidArgument(msg);
    default:
      return Status::Internal(msg);
  }
}

}  // namespace

StatusOr<std::unique_ptr<SafetensorsWriter>> SafetensorsWriter::Create(const std::string& path,
                                                                       std::vector<TensorDecl> tensors,
                                                                       std::map<std::string, std::string> metadata) {
  std::unique_ptr<SafetensorsWriter> w(new SafetensorsWriter());
  w->path_ = path;
  w->partial_path_ = path + ".partial";

  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::set<std::string> names;
  uint64_t offset = 0;
  for (TensorDecl& t : tensors) {
    if (t.name.empty() || t.name == "__metadata__") {
      return Status::InvalidArgument(path + ": invalid tensor name '" + t.name + "'");
    }
    if (!names.insert(t.name).second) {
      return Status::InvalidArgument(path + ": tensor '" + t.name + "' is declared twice");
    }
    uint64_t numel = 1;
    for (int64_t d : t.shape) {
      if (d < 0 || __builtin_mul_overflow(numel, static_cast<uint64_t>(d), &numel)) {
        return Status::InvalidArgument(path + ": tensor '" + t.name + "' has an invalid shape " +
                                       ShapeToString(t.shape));
      }
    }
    uint64_t nbytes = DTypeBytes(t.dtype, numel);
    header[t.name] = {{"dtype", DTypeName(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    w->slots_.push_back(Slot{std::move(t), nbytes});
  }

  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {  // a name that is not UTF-8
    return Status::InvalidArgument(path + ": cannot encode header: " + e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  w->file_size_ = 8 + text.size() + offset;

  w->out_ = std::fopen(w->partial_path_.c_str(), "wb");
  if (w->out_ == nullptr) return IoError(w->partial_path_, "cannot create", errno);
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(static_cast<uint64_t>(text.size()) >> (8 * i));
  BATON_RETURN_IF_ERROR(w->WriteRaw(len, sizeof(len)));
  BATON_RETURN_IF_ERROR(w->WriteRaw(text.data(), text.size()));
  return w;
}

SafetensorsWriter::~SafetensorsWriter() {
  if (out_ != nullptr) {
    std::fclose(out_);
    std::remove(partial_path_.c_str());
  }
}

Status SafetensorsWriter::WriteRaw(const void* data, size_t nbytes) {
  if (nbytes == 0) return Status::Ok();
  if (std::fwrite(data, 1, nbytes, out_) != nbytes) {
    failed_ = IoError(partial_path_, "write failed", errno);
  }
  return failed_;
}

void SafetensorsWriter::SkipCompleteBefore(std::string_view name) {
  while (current_ < slots_.size() && written_in_current_ == slots_[current_].nbytes &&
         !(slots_[current_].nbytes == 0 && slots_[current_].decl.name == name)) {
    ++current_;
    written_in_current_ = 0;
  }
}

Status SafetensorsWriter::Write(std::string_view name, const void* data, size_t nbytes) {
  if (!failed_.ok()) return failed_;
  if (finished_) return Status::FailedPrecondition(path_ + ": write of '" + std::string(name) + "' after Finish()");
  SkipCompleteBefore(name);
  if (current_ == slots_.size()) {
    return Status::FailedPrecondition(path_ + ": write of '" + std::string(name) +
                                      "' after every declared tensor was written");
  }
  const Slot& slot = slots_[current_];
  if (slot.decl.name != name) {
    return Status::FailedPrecondition(path_ + ": write of '" + std::string(name) + "' while tensor '" + slot.decl.name +
                                      "' is next (" + std::to_string(written_in_current_) + " of " +
                                      std::to_string(slot.nbytes) +
                                      " bytes written); tensors are written in declaration order");
  }
  if (nbytes > slot.nbytes - written_in_current_) {
    return Status::InvalidArgument(path_ + ": tensor '" + slot.decl.name + "' is " + std::to_string(slot.nbytes) +
                                   " bytes; a write of " + std::to_string(nbytes) + " bytes at " +
                                   std::to_string(written_in_current_) + " runs past its end");
  }
  BATON_RETURN_IF_ERROR(WriteRaw(data, nbytes));
  written_in_current_ += nbytes;
  return Status::Ok();
}

Status SafetensorsWriter::WriteTensor(std::string_view name, const Tensor& tensor) {
  SkipCompleteBefore(name);
  if (current_ < slots_.size() && slots_[current_].decl.name == name) {
    const TensorDecl& d = slots_[current_].decl;
    if (d.dtype != tensor.dtype() || d.shape != tensor.shape()) {
      return Status::InvalidArgument(path_ + ": tensor '" + d.name + "' was declared " + DTypeName(d.dtype) +
                                     ShapeToString(d.shape) + " but written as " + tensor.DebugString());
    }
  }
  return Write(name, tensor.raw(), tensor.nbytes());
}

Status SafetensorsWriter::Finish() {
  if (!failed_.ok()) return failed_;
  if (finished_) return Status::FailedPrecondition(path_ + ": Finish() called twice");
  SkipCompleteBefore({});
  if (current_ < slots_.size()) {
    const Slot& slot = slots_[current_];
    return Status::FailedPrecondition(path_ + ": Finish() with tensor '" + slot.decl.name + "' at " +
                                      std::to_string(written_in_current_) + " of " + std::to_string(slot.nbytes) +
                                      " bytes (" + std::to_string(slots_.size() - current_) + " tensors incomplete)");
  }
  std::FILE* out = out_;
  out_ = nullptr;
  if (std::fflush(out) != 0) {
    failed_ = IoError(partial_path_, "write failed", errno);
    std::fclose(out);
    std::remove(partial_path_.c_str());
    return failed_;
  }
  if (std::fclose(out) != 0) {
    failed_ = IoError(partial_path_, "close failed", errno);
    std::remove(partial_path_.c_str());
    return failed_;
  }
  if (std::rename(partial_path_.c_str(), path_.c_str()) != 0) {
    failed_ = IoError(path_, "cannot rename " + partial_path_ + " to it", errno);
    std::remove(partial_path_.c_str());
    return failed_;
  }
  finished_ = true;
  return Status::Ok();
}

}  // namespace baton
