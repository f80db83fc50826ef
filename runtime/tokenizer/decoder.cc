#include "runtime/tokenizer/decoder.h"

#include <utility>

#include "runtime/tokenizer/byte_level.h"
#include "runtime/tokenizer/pattern.h"
#include "runtime/tokenizer/utf8.h"

namespace baton {
namespace {

class SequenceDecoder : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> steps) : steps_(std::move(steps)) {}
  void DecodeChain(std::vector<std::string>* tokens, DecodeState* state) const override {
    for (const auto& step : steps_) step->DecodeChain(tokens, state);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> steps_;
};

void FuseAll(std::vector<std::string>* tokens, DecodeState* state) {
  std::string all;
  for (const std::string& t : *tokens) all += t;
  tokens->assign(1, std::move(all));
  state->fused = true;
}

class ByteLevelDecoder : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens, DecodeState* state) const override {
    std::string bytes;
    for (std::string& t : *tokens) {
      // A token outside the byte-level alphabet (an added token, say) keeps its own bytes.
      if (!ByteLevelToBytes(t, &bytes)) bytes += t;
    }
    tokens->assign(1, Utf8Lossy(bytes));
    state->fused = true;
  }
};

class FuseDecoder : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens, DecodeState* state) const override { FuseAll(tokens, state); }
};

// Runs of <0xXX> tokens become the characters their bytes spell, or one
// U+FFFD per byte when those bytes are not valid UTF-8.
class ByteFallbackDecoder : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens, DecodeState*) const override {
    std::vector<std::string> out;
    out.reserve(tokens->size());
    std::string pending;
    size_t pending_count = 0;
    auto flush = [&] {
      if (pending_count == 0) return;
      if (IsValidUtf8(pending)) {
        out.push_back(pending);
      } else {
        for (size_t i = 0; i < pending_count; ++i) out.emplace_back(kReplacementCharacter);
      }
      pending.clear();
      pending_count = 0;
    };
    for (std::string& t : *tokens) {
      int byte = ParseByteToken(t);
      if (byte >= 0) {
        pending.push_back(static_cast<char>(byte));
        ++pending_count;
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    *tokens = std::move(out);
  }

 private:
  static int HexDigit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  // The byte of a "<0xXX>" token, or -1.
  static int ParseByteToken(const std::string& t) {
    if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
    const int hi = HexDigit(t[3]);
    const int lo = HexDigit(t[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
  }
};

class ReplaceDecoder : public Decoder {
 public:
  ReplaceDecoder(Pattern pattern, std::string content) : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void DecodeChain(std::vector<std::string>* tokens, DecodeState*) const override {
    for (std::string& t : *tokens) t = pattern_.ReplaceAll(t, content_);
  }

 private:
  Pattern pattern_;
  std::string content_;
};

// Removes up to `start` copies of `content` from the front of each token
// and up to `stop` from the back.
class StripDecoder : public Decoder {
 public:
  StripDecoder(std::string content, size_t start, size_t stop)
      : content_(std::move(content)), start_(start), stop_(stop) {}
  void DecodeChain(std::vector<std::string>* tokens, DecodeState* state) const override {
    if (content_.empty()) return;
    for (size_t i = 0; i < tokens->size(); ++i) {
      std::string& t = (*tokens)[i];
      // After a Fuse, token 0 of a window continues text decoded earlier:
      // its front is not the sequence's front, so it keeps its spaces.
      const bool strip_front = !(state->fused && i == 0 && !state->at_sequence_start);
      size_t begin = 0;
      for (size_t n = 0; strip_front && n < start_ && t.compare(begin, content_.size(), content_) == 0; ++n) {
        begin += content_.size();
      }
      size_t end = t.size();
      for (size_t n = 0; n < stop_ && end >= begin + content_.size() &&
                         t.compare(end - content_.size(), content_.size(), content_) == 0;
           ++n) {
        end -= content_.size();
      }
      t = t.substr(begin, end - begin);
    }
  }

 private:
  std::string content_;  // one character
  size_t start_;
  size_t stop_;
};

// "▁" becomes a space, except in the sequence's first token (where the
// pre-tokenizer had prepended it) unless prepend_scheme is "never".
class MetaspaceDecoder : public Decoder {
 public:
  MetaspaceDecoder(std::string replacement, bool drop_first)
      : replacement_(std::move(replacement)), drop_first_(drop_first) {}
  void DecodeChain(std::vector<std::string>* tokens, DecodeState* state) const override {
    if (replacement_.empty()) return;
    for (size_t i = 0; i < tokens->size(); ++i) {
      const bool drop = drop_first_ && i == 0 && state->at_sequence_start;
      std::string& t = (*tokens)[i];
      std::string out;
      out.reserve(t.size());
      size_t pos = 0;
      while (pos < t.size()) {
        if (t.compare(pos, replacement_.size(), replacement_) == 0) {
          if (!drop) out.push_back(' ');
          pos += replacement_.size();
        } else {
          out.push_back(t[pos++]);
        }
      }
      t = std::move(out);
    }
  }

 private:
  std::string replacement_;
  bool drop_first_;
};

StatusOr<std::unique_ptr<Decoder>> MetaspaceFromJson(const nlohmann::json& j, const JsonPath& at) {
  BATON_ASSIGN_OR_RETURN(std::string replacement, GetString(j, "replacement", at));
  bool drop_first = true;
  if (HasField(j, "prepend_scheme")) {
    BATON_ASSIGN_OR_RETURN(std::string scheme, GetString(j, "prepend_scheme", at));
    if (scheme != "always" && scheme != "first" && scheme != "never") {
      return Status::DataLoss(at.Field("prepend_scheme").ToString() + " '" + scheme +
                              "' is not one of always, first, never");
    }
    drop_first = scheme != "never";
  } else {
    BATON_ASSIGN_OR_RETURN(drop_first, GetBool(j, "add_prefix_space", true, at));
  }
  return std::unique_ptr<Decoder>(new MetaspaceDecoder(std::move(replacement), drop_first));
}

}  // namespace

StatusOr<std::unique_ptr<Decoder>> DecoderFromJson(const nlohmann::json& j, const JsonPath& at) {
  if (j.is_null()) return std::unique_ptr<Decoder>();
  BATON_ASSIGN_OR_RETURN(std::string type, GetString(j, "type", at));
  if (type == "Sequence") {
    BATON_ASSIGN_OR_RETURN(const nlohmann::json* items, GetArray(j, "decoders", at));
    std::vector<std::unique_ptr<Decoder>> steps;
    for (size_t i = 0; i < items->size(); ++i) {
      BATON_ASSIGN_OR_RETURN(auto step, DecoderFromJson((*items)[i], at.Field("decoders").Index(i)));
      if (step != nullptr) steps.push_back(std::move(step));
    }
    return std::unique_ptr<Decoder>(new SequenceDecoder(std::move(steps)));
  }
  if (type == "ByteLevel") return std::unique_ptr<Decoder>(new ByteLevelDecoder());
  if (type == "ByteFallback") return std::unique_ptr<Decoder>(new ByteFallbackDecoder());
  if (type == "Fuse") return std::unique_ptr<Decoder>(new FuseDecoder());
  if (type == "Metaspace") return MetaspaceFromJson(j, at);
  if (type == "Replace") {
    if (!HasField(j, "pattern")) return Status::DataLoss(at.Field("pattern").ToString() + " is missing");
    BATON_ASSIGN_OR_RETURN(Pattern pattern, Pattern::FromJson(j["pattern"], at.Field("pattern")));
    BATON_ASSIGN_OR_RETURN(std::string content, GetString(j, "content", at));
    return std::unique_ptr<Decoder>(new ReplaceDecoder(std::move(pattern), std::move(content)));
  }
  if (type == "Strip") {
    BATON_ASSIGN_OR_RETURN(std::string content, GetString(j, "content", at));
    BATON_ASSIGN_OR_RETURN(int64_t start, GetIntOr(j, "start", 0, at));
    BATON_ASSIGN_OR_RETURN(int64_t stop, GetIntOr(j, "stop", 0, at));
    if (start < 0 || stop < 0) return Status::DataLoss(at.ToString() + ": start and stop must be >= 0");
    return std::unique_ptr<Decoder>(
        new StripDecoder(std::move(content), static_cast<size_t>(start), static_cast<size_t>(stop)));
  }
  return UnsupportedType(at, type, "ByteLevel, ByteFallback, Fuse, Metaspace, Replace, Strip, Sequence");
}

}  // namespace baton
