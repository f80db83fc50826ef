// SafetensorsWriter: writes a .safetensors file by streaming, so a checkpoint
// larger than memory can be produced chunk by chunk.
//
// All tensors are declared up front (that fixes the header); the caller then
// writes each tensor's bytes in declaration order, in as many chunks as it
// likes, and calls Finish(). The data goes to "<path>.partial", renamed to
// <path> by a successful Finish(), so an interrupted write never leaves a
// file that looks complete; a writer destroyed without Finish() removes it.
//
// The header is laid out like the reference implementation's: JSON padded
// with spaces to a multiple of 8 bytes (so every tensor of a well-sized
// dtype starts aligned), an optional "__metadata__" object first, data in
// declaration order without gaps. One thread at a time.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/core/dtype.h"
#include "runtime/core/status.h"
#include "runtime/core/tensor.h"

namespace baton {

struct TensorDecl {
  std::string name;
  DType dtype = DType::kF32;
  Shape shape;
};

class SafetensorsWriter {
 public:
  // Validates the declarations (unique, non-empty names; non-negative dims)
  // and writes the header. `metadata` becomes "__metadata__" unless empty.
  static StatusOr<std::unique_ptr<SafetensorsWriter>> Create(const std::string& path, std::vector<TensorDecl> tensors,
                                                             std::map<std::string, std::string> metadata = {
                                                                 {"format", "pt"}});
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  // Appends `nbytes` of tensor `name`, which must be the tensor being written
  // (or, once that one is complete, the next declared one).
  Status Write(std::string_view name, const void* data, size_t nbytes);
  // Convenience: the whole tensor at once; dtype and shape must match.
  Status WriteTensor(std::string_view name, const Tensor& tensor);
  // Fails if any tensor is incomplete; flushes, closes and renames the file.
  Status Finish();

  const std::string& path() const { return path_; }
  // Header + data, as the finished file will be.
  uint64_t file_size() const { return file_size_; }

 private:
  struct Slot {
    TensorDecl decl;
    uint64_t nbytes = 0;
  };
  SafetensorsWriter() = default;
  Status WriteRaw(const void* data, size_t nbytes);
  // Moves past complete tensors; stops at `name` even if it has zero bytes.
  void SkipCompleteBefore(std::string_view name);

  std::string path_;
  std::string partial_path_;
  std::FILE* out_ = nullptr;
  std::vector<Slot> slots_;
  size_t current_ = 0;
  uint64_t written_in_current_ = 0;
  uint64_t file_size_ = 0;
  Status failed_;  // the first I/O error; every later call returns it
  bool finished_ = false;
};

}  // namespace baton
