#include "runtime/training/hf_export.h"

#include <filesystem>
#include <system_error>

#include "runtime/checkpoint/safetensors_writer.h"
#include "runtime/training/hf_layout.h"

namespace baton {

Status ExportHfModel(const ModelConfig& config, const StageWeights& weights, const std::string& source_dir,
                     const std::string& out_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) return Status::InvalidArgument("--out '" + out_dir + "': cannot create: " + ec.message());
  const DType dtype = config.stored_dtype;
  std::vector<std::pair<std::string, Tensor>> tensors = ToHfTensors(config, weights);
  std::vector<TensorDecl> decls;
  for (auto& [name, t] : tensors) {
    if (dtype != DType::kF32) t = t.ToDType(dtype);
    decls.push_back({name, dtype, t.shape()});
  }
  BATON_ASSIGN_OR_RETURN(auto writer, SafetensorsWriter::Create(out_dir + "/model.safetensors", decls));
  for (const auto& [name, t] : tensors) BATON_RETURN_IF_ERROR(writer->WriteTensor(name, t));
  BATON_RETURN_IF_ERROR(writer->Finish());
  for (const char* file : {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                           "special_tokens_map.json"}) {
    const fs::path from = fs::path(source_dir) / file;
    if (!fs::exists(from)) continue;
    fs::copy_file(from, fs::path(out_dir) / file, fs::copy_options::overwrite_existing, ec);
    if (ec) return Status::InvalidArgument("cannot copy " + from.string() + " to " + out_dir + ": " + ec.message());
  }
  return Status::Ok();
}

}  // namespace baton
