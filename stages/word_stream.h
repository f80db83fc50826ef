// WordWriter / WordReader: messages between stages as flat streams of
// int32 words (plans and sampled results are nothing but integers and
// floats). The reader never reads past the end: it records the failure and
// returns zeros, so a decoder checks failed()/done() once at the end.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace baton {

class WordWriter {
 public:
  void Put(int32_t v) { words_.push_back(v); }
  void Put64(int64_t v) {
    Put(static_cast<int32_t>(v & 0xffffffff));
    Put(static_cast<int32_t>(v >> 32));
  }
  void PutFloat(float f) {
    int32_t bits;
    std::memcpy(&bits, &f, sizeof(bits));
    Put(bits);
  }
  void PutAll64(const std::vector<int64_t>& v) {
    Put(static_cast<int32_t>(v.size()));
    for (int64_t x : v) Put64(x);
  }
  void PutAll(const std::vector<int32_t>& v) {
    Put(static_cast<int32_t>(v.size()));
    words_.insert(words_.end(), v.begin(), v.end());
  }
  std::vector<uint8_t> Bytes() const {
    std::vector<uint8_t> out(words_.size() * sizeof(int32_t));
    if (!out.empty()) std::memcpy(out.data(), words_.data(), out.size());
    return out;
  }

 private:
  std::vector<int32_t> words_;
};

class WordReader {
 public:
  explicit WordReader(const std::vector<uint8_t>& bytes) : words_(bytes.size() / sizeof(int32_t)) {
    if (!words_.empty()) std::memcpy(words_.data(), bytes.data(), words_.size() * sizeof(int32_t));
    ok_ = bytes.size() % sizeof(int32_t) == 0;
  }
  int32_t Get() {
    if (pos_ >= words_.size()) {
      ok_ = false;
      return 0;
    }
    return words_[pos_++];
  }
  int64_t Get64() {
    const uint32_t lo = static_cast<uint32_t>(Get());
    const int64_t hi = Get();
    return static_cast<int64_t>((static_cast<uint64_t>(hi) << 32) | lo);
  }
  float GetFloat() {
    const int32_t bits = Get();
    float f;
    std::memcpy(&f, &bits, sizeof(f));
    return f;
  }
  std::vector<int32_t> GetAll() {
    const int32_t n = Get();
    if (n < 0 || static_cast<size_t>(n) > words_.size() - std::min(pos_, words_.size())) {
      ok_ = false;
      return {};
    }
    std::vector<int32_t> v(words_.begin() + static_cast<int64_t>(pos_),
                           words_.begin() + static_cast<int64_t>(pos_ + n));
    pos_ += static_cast<size_t>(n);
    return v;
  }
  std::vector<int64_t> GetAll64() {
    const int32_t n = Get();
    if (n < 0 || static_cast<size_t>(n) * 2 > words_.size() - std::min(pos_, words_.size())) {
      ok_ = false;
      return {};
    }
    std::vector<int64_t> v(static_cast<size_t>(n));
    for (int64_t& x : v) x = Get64();
    return v;
  }
  bool failed() const { return !ok_; }
  // Everything read, nothing left over.
  bool done() const { return ok_ && pos_ == words_.size(); }

 private:
  std::vector<int32_t> words_;
  size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace baton
