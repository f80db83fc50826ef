#include "runtime/training/training_data.h"

#include <algorithm>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <sstream>
#include <string_view>

namespace baton {
namespace {

bool EndsWith(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool LooksLikeJsonl(const std::string& path, std::string_view content) {
  if (EndsWith(path, ".jsonl")) return true;
  if (EndsWith(path, ".txt")) return false;
  const size_t first = content.find_first_not_of(" \t\r\n");
  return first != std::string_view::npos && content[first] == '{';
}

void Append(TokenStream& out, const std::vector<int32_t>& ids, bool with_loss) {
  out.ids.insert(out.ids.end(), ids.begin(), ids.end());
  if (with_loss) {
    out.labels.insert(out.labels.end(), ids.begin(), ids.end());
  } else {
    out.labels.insert(out.labels.end(), ids.size(), kIgnoreIndex);
  }
}

// One JSONL line being turned into tokens; `where` is "file:line".
class LineParser {
 public:
  LineParser(std::string where, const Tokenizer* tokenizer, std::optional<int32_t> eos)
      : where_(std::move(where)), tokenizer_(tokenizer), eos_(eos) {}

  Status Parse(std::string_view line, TokenStream& out) const {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::parse_error& e) {
      return Error("not valid JSON (" + std::string(e.what()) + ")");
    }
    if (!j.is_object()) return Error("expected a JSON object, got " + std::string(j.type_name()));
    const bool has_ids = j.contains("input_ids"), has_text = j.contains("text");
    const bool has_pair = j.contains("prompt") || j.contains("completion");
    if (has_ids + has_text + has_pair > 1) {
      return Error("holds more than one of 'text', 'prompt'/'completion' and 'input_ids'; which one to train on?");
    }
    if (has_ids) return ParseIds(j, out);
    if (has_text) {
      BATON_ASSIGN_OR_RETURN(std::vector<int32_t> ids, Encode(j, "text", /*special_tokens=*/true));
      Append(out, ids, /*with_loss=*/true);
      return Status::Ok();
    }
    if (has_pair) return ParsePair(j, out);
    return Error("expected a field 'text', 'prompt' and 'completion', or 'input_ids'");
  }

 private:
  Status Error(const std::string& what) const { return Status::InvalidArgument(where_ + ": " + what); }

  StatusOr<std::vector<int32_t>> Encode(const nlohmann::json& j, const char* field, bool special_tokens) const {
    if (!j.contains(field)) return Error(std::string("field '") + field + "' is missing");
    const nlohmann::json& v = j[field];
    if (!v.is_string()) {
      return Error(std::string("field '") + field + "' is not a string (got " + v.type_name() + ")");
    }
    if (tokenizer_ == nullptr) {
      return Error(std::string("field '") + field + "' is text, which needs the model's tokenizer.json (none loaded)");
    }
    return tokenizer_->Encode(v.get<std::string>(), special_tokens);
  }

  Status ParsePair(const nlohmann::json& j, TokenStream& out) const {
    BATON_ASSIGN_OR_RETURN(std::vector<int32_t> prompt, Encode(j, "prompt", /*special_tokens=*/true));
    BATON_ASSIGN_OR_RETURN(std::vector<int32_t> completion, Encode(j, "completion", /*special_tokens=*/false));
    if (eos_.has_value() && (completion.empty() || completion.back() != *eos_)) completion.push_back(*eos_);
    Append(out, prompt, /*with_loss=*/false);
    Append(out, completion, /*with_loss=*/true);
    return Status::Ok();
  }

  // The integers of array field `field`; `allow_ignore` admits kIgnoreIndex.
  StatusOr<std::vector<int32_t>> IntArray(const nlohmann::json& j, const char* field, bool allow_ignore) const {
    const nlohmann::json& v = j[field];
    const std::string name = std::string("field '") + field + "'";
    if (!v.is_array()) return Error(name + " is not an array (got " + v.type_name() + ")");
    std::vector<int32_t> out;
    out.reserve(v.size());
    for (size_t i = 0; i < v.size(); ++i) {
      const nlohmann::json& e = v[i];
      const std::string at = name + "[" + std::to_string(i) + "]";
      if (!e.is_number_integer()) return Error(at + " is not an integer (got " + e.dump() + ")");
      // Unsigned JSON numbers above INT64_MAX would wrap in get<int64_t>.
      if (e.is_number_unsigned() && e.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int32_t>::max())) {
        return Error(at + " = " + e.dump() + " is not a valid token id");
      }
      const int64_t x = e.get<int64_t>();
      const bool ok = (x >= 0 && x <= std::numeric_limits<int32_t>::max()) || (allow_ignore && x == kIgnoreIndex);
      if (!ok) {
        return Error(at + " = " + std::to_string(x) +
                     (allow_ignore ? " is neither a token id nor -100" : " is not a valid token id"));
      }
      out.push_back(static_cast<int32_t>(x));
    }
    return out;
  }

  Status ParseIds(const nlohmann::json& j, TokenStream& out) const {
    BATON_ASSIGN_OR_RETURN(std::vector<int32_t> ids, IntArray(j, "input_ids", /*allow_ignore=*/false));
    std::vector<int32_t> labels = ids;
    if (j.contains("labels")) {
      BATON_ASSIGN_OR_RETURN(labels, IntArray(j, "labels", /*allow_ignore=*/true));
      if (labels.size() != ids.size()) {
        return Error("field 'labels' has " + std::to_string(labels.size()) + " entries but 'input_ids' has " +
                     std::to_string(ids.size()));
      }
    }
    out.ids.insert(out.ids.end(), ids.begin(), ids.end());
    out.labels.insert(out.labels.end(), labels.begin(), labels.end());
    return Status::Ok();
  }

  std::string where_;
  const Tokenizer* tokenizer_;
  std::optional<int32_t> eos_;
};

// The order of epoch `epoch`'s sequences. Fisher-Yates driven by
// mt19937_64 and seed_seq, both fully specified by the standard (unlike the
// distributions), so every platform draws the same order; seed_seq mixes
// (seed, epoch) so that nearby seeds do not share epochs' orders.
std::vector<size_t> EpochOrder(size_t n, uint64_t seed, int64_t epoch) {
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  const auto e = static_cast<uint64_t>(epoch);
  std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32), static_cast<uint32_t>(e),
                    static_cast<uint32_t>(e >> 32)};
  std::mt19937_64 rng(seq);
  for (size_t k = n; k > 1; --k) std::swap(order[k - 1], order[rng() % k]);
  return order;
}

}  // namespace

StatusOr<TokenStream> LoadTrainingData(const std::string& path, const Tokenizer* tokenizer,
                                       std::optional<int32_t> eos_token_id) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound(path + ": cannot open the training data file");
  std::stringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) return Status::DataLoss(path + ": read failed");
  std::string content = buffer.str();
  if (content.rfind("\xEF\xBB\xBF", 0) == 0) content.erase(0, 3);  // a UTF-8 byte order mark is not text
  if (content.find_first_not_of(" \t\r\n") == std::string::npos) {
    return Status::InvalidArgument(path + ": the training data file is empty");
  }

  TokenStream out;
  if (!LooksLikeJsonl(path, content)) {
    if (tokenizer == nullptr) {
      return Status::InvalidArgument(path + ": plain text needs the model's tokenizer.json (none loaded)");
    }
    Append(out, tokenizer->Encode(content), /*with_loss=*/true);
  } else {
    const std::string_view all(content);
    int line_no = 0;
    for (size_t begin = 0; begin < all.size();) {
      size_t end = all.find('\n', begin);
      if (end == std::string_view::npos) end = all.size();
      const std::string_view line = all.substr(begin, end - begin);
      begin = end + 1;
      ++line_no;
      if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
      const LineParser parser(path + ":" + std::to_string(line_no), tokenizer, eos_token_id);
      BATON_RETURN_IF_ERROR(parser.Parse(line, out));
    }
  }
  if (out.ids.empty()) return Status::InvalidArgument(path + ": holds no tokens");
  return out;
}

std::vector<TrainSequence> PackSequences(const TokenStream& tokens, int seq_len) {
  std::vector<TrainSequence> out;
  if (seq_len <= 0) return out;
  const size_t n = std::min(tokens.ids.size(), tokens.labels.size());
  out.reserve(n / static_cast<size_t>(seq_len));
  for (size_t begin = 0; begin + static_cast<size_t>(seq_len) <= n; begin += static_cast<size_t>(seq_len)) {
    const auto b = static_cast<int64_t>(begin), e = b + seq_len;
    out.push_back({std::vector<int32_t>(tokens.ids.begin() + b, tokens.ids.begin() + e),
                   std::vector<int32_t>(tokens.labels.begin() + b, tokens.labels.begin() + e)});
  }
  return out;
}

SequenceSampler::SequenceSampler(std::vector<TrainSequence> sequences, bool shuffle, uint64_t seed)
    : sequences_(std::move(sequences)), shuffle_(shuffle), seed_(seed) {}

TrainBatch SequenceSampler::Batch(int64_t step, int batch_size) const {
  TrainBatch b;
  if (sequences_.empty() || batch_size <= 0) return b;
  b.num_seqs = batch_size;
  b.seq_len = static_cast<int>(sequences_[0].ids.size());
  b.input_ids.reserve(static_cast<size_t>(batch_size) * static_cast<size_t>(b.seq_len));
  b.labels.reserve(b.input_ids.capacity());
  const auto n = static_cast<int64_t>(sequences_.size());
  std::vector<size_t> order;  // of `order_epoch`; a batch spans few epochs, each drawn once
  int64_t order_epoch = -1;
  for (int i = 0; i < batch_size; ++i) {
    const int64_t at = step * batch_size + i;
    const int64_t epoch = at / n;
    size_t index = static_cast<size_t>(at % n);
    if (shuffle_) {
      if (epoch != order_epoch) {
        order = EpochOrder(sequences_.size(), seed_, epoch);
        order_epoch = epoch;
      }
      index = order[index];
    }
    const TrainSequence& s = sequences_[index];
    b.input_ids.insert(b.input_ids.end(), s.ids.begin(), s.ids.end());
    b.labels.insert(b.labels.end(), s.labels.begin(), s.labels.end());
  }
  return b;
}

TrainBatch SliceBatch(const TrainBatch& batch, int first, int count) {
  const int begin = std::clamp(first, 0, batch.num_seqs);
  const int end = static_cast<int>(std::clamp<int64_t>(int64_t{begin} + std::max(count, 0), begin, batch.num_seqs));
  TrainBatch m;
  m.num_seqs = end - begin;
  m.seq_len = batch.seq_len;
  const auto from = int64_t{begin} * batch.seq_len, to = int64_t{end} * batch.seq_len;
  m.input_ids.assign(batch.input_ids.begin() + from, batch.input_ids.begin() + to);
  m.labels.assign(batch.labels.begin() + from, batch.labels.begin() + to);
  return m;
}

}  // namespace baton
