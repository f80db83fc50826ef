#include "runtime/tokenizer/tokenizer.h"

#include <algorithm>
#include <fstream>
#include <sstream>

namespace baton {

StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound(path + ": cannot open the tokenizer file");
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) return Status::DataLoss(path + ": read failed");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(contents.str());
  } catch (const nlohmann::json::parse_error& e) {
    return Status::DataLoss(path + ": not valid JSON: " + e.what());
  }
  return FromJson(j, path);
}

StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromJson(const nlohmann::json& j, const std::string& source_name) {
  const JsonPath root(source_name);
  if (!j.is_object()) return Status::DataLoss(source_name + ": the top level must be a JSON object");
  if (!HasField(j, "model")) return Status::DataLoss(root.Field("model").ToString() + " is missing");
  const nlohmann::json& model = j["model"];
  const JsonPath model_at = root.Field("model");
  // Files from before "type" was written hold a BPE whenever they have merges.
  std::string type = "BPE";
  if (HasField(model, "type")) {
    BATON_ASSIGN_OR_RETURN(type, GetString(model, "type", model_at));
  } else if (!HasField(model, "merges")) {
    return Status::DataLoss(model_at.Field("type").ToString() + " is missing");
  }
  if (type != "BPE") {
    return Status::Unimplemented(model_at.Field("type").ToString() + " '" + type + "' is not supported (expected BPE)");
  }

  std::unique_ptr<Tokenizer> t(new Tokenizer());
  BATON_ASSIGN_OR_RETURN(t->model_, BpeModel::FromJson(model, model_at));
  const auto field = [&j](const char* key) -> const nlohmann::json& {
    static const nlohmann::json kNull;
    return j.contains(key) ? j[key] : kNull;
  };
  BATON_ASSIGN_OR_RETURN(t->normalizer_, NormalizerFromJson(field("normalizer"), root.Field("normalizer")));
  BATON_ASSIGN_OR_RETURN(t->pre_tokenizer_, PreTokenizerFromJson(field("pre_tokenizer"), root.Field("pre_tokenizer")));
  BATON_ASSIGN_OR_RETURN(t->post_processor_,
                         PostProcessorFromJson(field("post_processor"), root.Field("post_processor")));
  BATON_ASSIGN_OR_RETURN(t->decoder_, DecoderFromJson(field("decoder"), root.Field("decoder")));
  BATON_ASSIGN_OR_RETURN(
      t->added_tokens_, AddedTokens::FromJson(field("added_tokens"), root.Field("added_tokens"), t->normalizer_.get()));
  // truncation and padding are batch-level settings the server owns; ignored.
  return t;
}

std::vector<int32_t> Tokenizer::Encode(std::string_view text, bool add_special_tokens) const {
  std::vector<int32_t> ids;
  std::vector<PreToken> words;
  for (const AddedTokens::Segment& raw : added_tokens_.Split(text, /*normalized=*/false)) {
    if (raw.token_id >= 0) {
      ids.push_back(raw.token_id);
      continue;
    }
    const std::string_view raw_text = text.substr(raw.begin, raw.end - raw.begin);
    const std::string normalized = normalizer_ != nullptr ? normalizer_->Normalize(raw_text) : std::string(raw_text);
    for (const AddedTokens::Segment& part : added_tokens_.Split(normalized, /*normalized=*/true)) {
      if (part.token_id >= 0) {
        ids.push_back(part.token_id);
        continue;
      }
      words.assign(1,
                   PreToken{normalized.substr(part.begin, part.end - part.begin), raw.begin == 0 && part.begin == 0});
      if (pre_tokenizer_ != nullptr) pre_tokenizer_->Split(&words);
      for (const PreToken& word : words) model_->Encode(word.text, &ids);
    }
  }
  if (add_special_tokens && post_processor_ != nullptr) post_processor_->AddSpecialTokens(&ids);
  return ids;
}

const std::string* Tokenizer::TokenString(int32_t id) const {
  if (const AddedToken* added = added_tokens_.FindById(id)) return &added->content;
  return model_->IdToToken(id);
}

bool Tokenizer::SkippedInDecode(int32_t id, bool skip_special_tokens) const {
  return TokenString(id) == nullptr || (skip_special_tokens && IsSpecial(id));
}

std::string Tokenizer::DecodeWindow(const std::vector<int32_t>& ids, bool skip_special_tokens,
                                    bool at_sequence_start) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (!SkippedInDecode(id, skip_special_tokens)) tokens.push_back(*TokenString(id));
  }
  std::string text;
  if (decoder_ == nullptr) {
    // HF joins undecoded tokens with spaces; a continuation needs the space
    // that separates it from the text before.
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i > 0 || !at_sequence_start) text += ' ';
      text += tokens[i];
    }
    return text;
  }
  DecodeState state;
  state.at_sequence_start = at_sequence_start;
  decoder_->DecodeChain(&tokens, &state);
  for (const std::string& t : tokens) text += t;
  return text;
}

std::string Tokenizer::Decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  return DecodeWindow(ids, skip_special_tokens, /*at_sequence_start=*/true);
}

int32_t Tokenizer::vocab_size() const { return std::max(model_->id_limit(), added_tokens_.id_limit()); }

std::optional<int32_t> Tokenizer::TokenToId(std::string_view token) const {
  if (auto id = added_tokens_.FindByContent(token)) return id;
  return model_->TokenToId(token);
}

std::optional<std::string> Tokenizer::IdToToken(int32_t id) const {
  const std::string* s = TokenString(id);
  if (s == nullptr) return std::nullopt;
  return *s;
}

bool Tokenizer::IsSpecial(int32_t id) const {
  const AddedToken* added = added_tokens_.FindById(id);
  return added != nullptr && added->special;
}

}  // namespace baton
