#include "runtime/training/training_data.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <sstream>

namespace baton {
namespace {

bool LooksLikeJsonl(const std::string& path, const std::string& content) {
  if (path.size() >= 6 && path.compare(path.size() - 6, 6, ".jsonl") == 0) return true;
  const size_t first = content.find_first_not_of(" \t\r\n");
  return first != std::string::npos && content[first] == '{';
}

}  // namespace

StatusOr<std::vector<int32_t>> LoadTrainingTokens(const std::string& path, const Tokenizer* tokenizer) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound("--data: cannot open '" + path + "'");
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string content = buffer.str();
  std::vector<int32_t> tokens;
  if (!LooksLikeJsonl(path, content)) {
    if (tokenizer == nullptr) return Status::InvalidArgument(path + ": plain text needs the model's tokenizer.json");
    return tokenizer->Encode(content);
  }
  std::istringstream lines(content);
  std::string line;
  int line_no = 0;
  while (std::getline(lines, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(line_no);
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object()) return Status::InvalidArgument(where + ": not a JSON object");
    if (j.contains("input_ids")) {
      const auto& ids = j["input_ids"];
      if (!ids.is_array()) return Status::InvalidArgument(where + ": field 'input_ids' is not an array");
      for (const auto& id : ids) {
        if (!id.is_number_integer()) return Status::InvalidArgument(where + ": field 'input_ids' holds a non-integer");
        tokens.push_back(id.get<int32_t>());
      }
    } else if (j.contains("text") && j["text"].is_string()) {
      if (tokenizer == nullptr) return Status::InvalidArgument(where + ": 'text' needs the model's tokenizer.json");
      const std::vector<int32_t> ids = tokenizer->Encode(j["text"].get<std::string>());
      tokens.insert(tokens.end(), ids.begin(), ids.end());
    } else {
      return Status::InvalidArgument(where + ": expected a string field 'text' or an array field 'input_ids'");
    }
  }
  return tokens;
}

std::vector<std::vector<int32_t>> PackSequences(const std::vector<int32_t>& tokens, int seq_len) {
  std::vector<std::vector<int32_t>> out;
  for (size_t begin = 0; seq_len > 0 && begin + seq_len <= tokens.size(); begin += seq_len) {
    out.emplace_back(tokens.begin() + static_cast<int64_t>(begin),
                     tokens.begin() + static_cast<int64_t>(begin) + seq_len);
  }
  return out;
}

SequenceSampler::SequenceSampler(std::vector<std::vector<int32_t>> sequences, bool shuffle, uint64_t seed)
    : sequences_(std::move(sequences)), shuffle_(shuffle), seed_(seed) {}

size_t SequenceSampler::At(int64_t i) const {
  const size_t n = sequences_.size();
  const int64_t epoch = i / static_cast<int64_t>(n);
  const size_t offset = static_cast<size_t>(i % static_cast<int64_t>(n));
  if (!shuffle_) return offset;
  // Fisher-Yates with mt19937_64 (fully specified by the standard, so the
  // order is the same on every platform).
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(seed_ + static_cast<uint64_t>(epoch));
  for (size_t k = n - 1; k > 0; --k) std::swap(order[k], order[rng() % (k + 1)]);
  return order[offset];
}

TrainBatch SequenceSampler::Batch(int64_t step, int batch_size) const {
  TrainBatch b;
  b.num_seqs = batch_size;
  b.seq_len = static_cast<int>(sequences_[0].size());
  for (int i = 0; i < batch_size; ++i) {
    const auto& seq = sequences_[At(step * batch_size + i)];
    b.input_ids.insert(b.input_ids.end(), seq.begin(), seq.end());
  }
  b.labels = b.input_ids;
  return b;
}

}  // namespace baton
