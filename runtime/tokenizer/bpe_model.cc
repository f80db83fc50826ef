#include "runtime/tokenizer/bpe_model.h"

#include <cstdio>
#include <limits>
#include <queue>

#include "runtime/tokenizer/utf8.h"

namespace baton {
namespace {

uint64_t PairKey(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

}  // namespace

StatusOr<std::unique_ptr<BpeModel>> BpeModel::FromJson(const nlohmann::json& model, const JsonPath& at) {
  std::unique_ptr<BpeModel> bpe(new BpeModel());
  BATON_RETURN_IF_ERROR(bpe->LoadVocab(model, at));
  BATON_ASSIGN_OR_RETURN(bpe->byte_fallback_, GetBool(model, "byte_fallback", false, at));
  BATON_ASSIGN_OR_RETURN(bpe->fuse_unk_, GetBool(model, "fuse_unk", false, at));
  BATON_ASSIGN_OR_RETURN(bpe->ignore_merges_, GetBool(model, "ignore_merges", false, at));
  BATON_ASSIGN_OR_RETURN(auto prefix, GetOptionalString(model, "continuing_subword_prefix", at));
  bpe->continuing_subword_prefix_ = prefix.value_or("");
  BATON_ASSIGN_OR_RETURN(auto suffix, GetOptionalString(model, "end_of_word_suffix", at));
  bpe->end_of_word_suffix_ = suffix.value_or("");
  BATON_RETURN_IF_ERROR(bpe->LoadMerges(model, at));  // needs continuing_subword_prefix_
  BATON_ASSIGN_OR_RETURN(auto unk, GetOptionalString(model, "unk_token", at));
  if (unk.has_value()) {
    bpe->unk_id_ = bpe->TokenToId(*unk);
    if (!bpe->unk_id_.has_value()) {
      return Status::DataLoss(at.Field("unk_token").ToString() + " '" + *unk + "' is not in model.vocab");
    }
  }
  // dropout only matters for training; encoding here is deterministic.
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    bpe->byte_ids_[b] = bpe->TokenToId(name).value_or(-1);
  }
  return bpe;
}

Status BpeModel::LoadVocab(const nlohmann::json& model, const JsonPath& at) {
  if (!HasField(model, "vocab")) return Status::DataLoss(at.Field("vocab").ToString() + " is missing");
  const nlohmann::json& vocab = model["vocab"];
  if (!vocab.is_object()) {
    return Status::DataLoss(at.Field("vocab").ToString() + " must be an object of token: id (got " + vocab.type_name() +
                            ")");
  }
  vocab_.reserve(vocab.size());
  for (const auto& [token, id_json] : vocab.items()) {
    if (!id_json.is_number_integer() || id_json.get<int64_t>() < 0 ||
        id_json.get<int64_t>() > std::numeric_limits<int32_t>::max() / 2) {
      return Status::DataLoss(at.Field("vocab").ToString() + " token '" + token +
                              "' has an id that is not a small non-negative integer");
    }
    const auto id = static_cast<int32_t>(id_json.get<int64_t>());
    vocab_[token] = id;
    if (static_cast<size_t>(id) >= id_to_token_.size()) {
      id_to_token_.resize(id + 1);
      has_id_.resize(id + 1, false);
    }
    id_to_token_[id] = token;
    has_id_[id] = true;
  }
  return Status::Ok();
}

Status BpeModel::LoadMerges(const nlohmann::json& model, const JsonPath& at) {
  if (!HasField(model, "merges")) return Status::Ok();  // a vocab of whole words needs none
  const JsonPath merges_at = at.Field("merges");
  const nlohmann::json& merges = model["merges"];
  if (!merges.is_array()) return Status::DataLoss(merges_at.ToString() + " must be an array");
  merges_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const nlohmann::json& m = merges[rank];
    std::string left, right;
    // Two spellings: "a b" (older files) and ["a", "b"] (newer ones, which
    // allow spaces inside tokens).
    if (m.is_string()) {
      const std::string& s = m.get_ref<const std::string&>();
      const size_t space = s.find(' ');
      if (space == std::string::npos) {
        return Status::DataLoss(merges_at.Index(rank).ToString() + " '" + s + "' is not two tokens split by a space");
      }
      left = s.substr(0, space);
      right = s.substr(space + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      left = m[0].get<std::string>();
      right = m[1].get<std::string>();
    } else {
      return Status::DataLoss(merges_at.Index(rank).ToString() + " must be \"a b\" or [\"a\", \"b\"]");
    }
    const auto left_id = TokenToId(left);
    const auto right_id = TokenToId(right);
    // The continuing-subword prefix of the right part is not repeated
    // inside the merged token.
    std::string merged = left;
    if (!continuing_subword_prefix_.empty() && right.starts_with(continuing_subword_prefix_)) {
      merged += right.substr(continuing_subword_prefix_.size());
    } else {
      merged += right;
    }
    const auto merged_id = TokenToId(merged);
    if (!left_id || !right_id || !merged_id) {
      return Status::DataLoss(merges_at.Index(rank).ToString() + " '" + left + " " + right +
                              "' uses a token that is not in model.vocab");
    }
    // As in HF, a repeated pair keeps its last rank.
    merges_[PairKey(*left_id, *right_id)] = Merge{static_cast<int32_t>(rank), *merged_id};
  }
  return Status::Ok();
}

std::optional<int32_t> BpeModel::TokenToId(std::string_view token) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::IdToToken(int32_t id) const {
  if (id < 0 || id >= id_limit() || !has_id_[id]) return nullptr;
  return &id_to_token_[id];
}

const BpeModel::Merge* BpeModel::FindMerge(int32_t left, int32_t right) const {
  auto it = merges_.find(PairKey(left, right));
  return it == merges_.end() ? nullptr : &it->second;
}

std::vector<BpeModel::Symbol> BpeModel::InitialSymbols(std::string_view word) const {
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  auto add = [&symbols](int32_t id) {
    const auto index = static_cast<int32_t>(symbols.size());
    symbols.push_back(Symbol{id, index - 1, index + 1, false});
  };
  // A run of unknown characters waiting to become one <unk> (fuse_unk) or several.
  bool pending_unk = false;
  std::string piece;
  for (size_t pos = 0; pos < word.size();) {
    const size_t length = Utf8CharLength(word, pos);
    const bool is_first = pos == 0;
    const bool is_last = pos + length == word.size();
    piece.assign(word.substr(pos, length));
    pos += length;
    if (!is_first) piece.insert(0, continuing_subword_prefix_);
    if (is_last) piece.append(end_of_word_suffix_);

    if (auto id = TokenToId(piece)) {
      if (pending_unk) add(*unk_id_);
      pending_unk = false;
      add(*id);
      continue;
    }
    if (byte_fallback_) {
      bool all_bytes_known = true;
      for (unsigned char b : piece) all_bytes_known = all_bytes_known && byte_ids_[b] >= 0;
      if (all_bytes_known) {
        for (unsigned char b : piece) add(byte_ids_[b]);
        continue;
      }
    }
    if (unk_id_.has_value()) {
      if (pending_unk && !fuse_unk_) add(*unk_id_);
      pending_unk = true;
    }
    // Without unk_token an unknown character is dropped, as in HF.
  }
  if (pending_unk) add(*unk_id_);
  if (!symbols.empty()) symbols.back().next = -1;
  return symbols;
}

void BpeModel::ApplyMerges(std::vector<Symbol>* symbols_ptr) const {
  std::vector<Symbol>& symbols = *symbols_ptr;
  struct Candidate {
    int32_t rank;
    int32_t position;  // index of the left symbol
    int32_t merged_id;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : position > o.position; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
  for (size_t i = 0; i + 1 < symbols.size(); ++i) {
    if (const Merge* m = FindMerge(symbols[i].id, symbols[i + 1].id)) {
      queue.push({m->rank, static_cast<int32_t>(i), m->merged_id});
    }
  }
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.position];
    if (left.merged_away || left.next < 0) continue;
    Symbol& right = symbols[left.next];
    // Stale: one side changed since this candidate was queued.
    const Merge* m = FindMerge(left.id, right.id);
    if (m == nullptr || m->merged_id != top.merged_id) continue;

    left.id = top.merged_id;
    right.merged_away = true;
    left.next = right.next;
    if (left.next >= 0) symbols[left.next].prev = top.position;

    if (left.prev >= 0) {
      if (const Merge* before = FindMerge(symbols[left.prev].id, left.id)) {
        queue.push({before->rank, left.prev, before->merged_id});
      }
    }
    if (left.next >= 0) {
      if (const Merge* after = FindMerge(left.id, symbols[left.next].id)) {
        queue.push({after->rank, top.position, after->merged_id});
      }
    }
  }
}

void BpeModel::Encode(std::string_view word, std::vector<int32_t>* ids) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (auto id = TokenToId(word)) {
      ids->push_back(*id);
      return;
    }
  }
  std::vector<Symbol> symbols = InitialSymbols(word);
  ApplyMerges(&symbols);
  for (const Symbol& s : symbols) {
    if (!s.merged_away) ids->push_back(s.id);
  }
}

}  // namespace baton
