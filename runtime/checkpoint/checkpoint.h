// Checkpoint: the weights of a Hugging Face model folder, one
// model.safetensors or shards listed by model.safetensors.index.json.
//
// Tensors are looked up by their Hugging Face name, tolerating how the
// checkpoint spells it: the original GPT-2 files store "h.0.attn.c_attn.weight"
// and "wte.weight" while transformers writes "transformer.h.0...."; Llama
// checkpoints use "model.layers.0...." but a bare "lm_head.weight". A lookup
// tries the exact name, then without a leading "model."/"transformer.", then
// with each of them added.
//
// Get() is zero-copy (a view of the mmap'ed file, read-only); GetF32()
// checks the shape and copies into float32. A Checkpoint is a cheap value:
// copies share the opened files. Immutable after Open: thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/checkpoint/safetensors_file.h"
#include "runtime/core/status.h"
#include "runtime/core/tensor.h"

namespace baton {

class Checkpoint {
 public:
  // Prefers model.safetensors (as transformers does), else the index; a
  // path to a .safetensors file is opened as that one file.
  // NotFound naming the folder if neither exists; DataLoss for a malformed
  // index or a tensor missing from its shard; NotFound naming a missing shard.
  static StatusOr<Checkpoint> Open(const std::string& model_dir);
  // One .safetensors file, wherever it lives.
  static StatusOr<Checkpoint> OpenFile(const std::string& path);

  bool Has(std::string_view name) const;
  // NotFound: "<dir>/model.safetensors: tensor 'model.layers.3.mlp.up_proj.weight' is missing";
  // Unimplemented if the tensor exists in a dtype Baton cannot load.
  StatusOr<Tensor> Get(std::string_view name) const;
  // Get + shape check + conversion to float32 (always a copy). DataLoss
  // naming the tensor, the expected and the stored shape on a mismatch;
  // InvalidArgument if the stored dtype is not a float type.
  StatusOr<Tensor> GetF32(std::string_view name, const Shape& expected_shape) const;
  // Dtype, shape and size without reading the data; nullptr if absent.
  const TensorInfo* Find(std::string_view name) const;

  // The names as stored, sorted.
  std::vector<std::string> TensorNames() const;
  // Bytes of all loadable tensors.
  uint64_t TotalBytes() const;
  // The file that names this checkpoint in messages (model.safetensors or the index).
  const std::string& source() const { return source_; }

 private:
  struct Entry {
    const SafetensorsFile* file = nullptr;  // owned through files_
    const TensorInfo* info = nullptr;       // nullptr: unsupported dtype
    std::string unsupported_dtype;
  };
  static StatusOr<Checkpoint> OpenIndex(const std::string& model_dir, const std::string& index_path);
  void AddFile(const std::shared_ptr<SafetensorsFile>& file);
  // The stored name `name` resolves to, or nullptr.
  const std::pair<const std::string, Entry>* Resolve(std::string_view name) const;

  std::string source_;
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, Entry, std::less<>> entries_;
};

}  // namespace baton
