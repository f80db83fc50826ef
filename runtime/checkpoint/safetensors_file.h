// SafetensorsFile: one .safetensors file, memory-mapped and validated.
//
// Open() maps the whole file read-only and checks the header against the
// file before anything is handed out, so a truncated or corrupt file is a
// DataLoss naming the file and the tensor or field at fault, never a crash
// later. View() is zero-copy: the returned Tensor shares ownership of the
// mapping, which stays alive until the last view is gone (the file object
// itself may go first). Views point at read-only pages: never write to them.
//
// Dtypes: F32, F16, BF16, I32, I8 (and Baton's packed I4) become tensors.
// Other dtypes of the safetensors format (BOOL, U8, I64, F64, F8_E4M3, ...)
// are validated like the rest but listed in unsupported_tensors() instead of
// tensors(): real checkpoints carry such tensors (integer buffers, masks)
// that a model never reads, so they must not make the whole file unusable;
// Checkpoint::Get names the dtype when one is asked for. A dtype that is not
// part of the format at all is DataLoss at Open.
//
// Immutable after Open: safe to share between threads.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/core/dtype.h"
#include "runtime/core/status.h"
#include "runtime/core/tensor.h"

namespace baton {

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  Shape shape;
  uint64_t offset = 0;  // absolute byte offset in the file
  uint64_t nbytes = 0;
};

class SafetensorsFile {
 public:
  // NotFound if the file cannot be opened, DataLoss if it is malformed.
  static StatusOr<std::shared_ptr<SafetensorsFile>> Open(const std::string& path);

  // In file order (by offset).
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  // nullptr if there is no tensor of a supported dtype with that name.
  const TensorInfo* Find(std::string_view name) const;
  // Zero-copy view in the stored dtype. `info` must come from this file.
  // Data that is not aligned to its element size (possible only in files
  // not written by the reference implementation) is copied instead, so
  // typed access stays well-defined.
  Tensor View(const TensorInfo& info) const;

  // Tensor name -> safetensors dtype name, for tensors Baton cannot load.
  const std::map<std::string, std::string, std::less<>>& unsupported_tensors() const { return unsupported_; }
  // The header's "__metadata__" (e.g. {"format": "pt"}); empty if absent.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::string& path() const { return path_; }
  uint64_t file_size() const { return file_size_; }

 private:
  SafetensorsFile() = default;
  Status ParseHeader(std::string_view header, uint64_t data_begin, uint64_t data_size);

  std::string path_;
  uint64_t file_size_ = 0;
  std::shared_ptr<void> mapping_;  // munmaps when the last view is gone
  const char* base_ = nullptr;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> index_;  // name -> position in tensors_
  std::map<std::string, std::string, std::less<>> unsupported_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace baton
