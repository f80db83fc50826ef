#include "stages/step_plan_codec.h"

#include <cstring>
#include <string>

namespace baton {
namespace {

constexpr int32_t kMagic = 0x31505442;  // "BTP1"

// Little helpers over a flat int32 stream: a plan is nothing but integers.
class Writer {
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

class Reader {
 public:
  explicit Reader(const std::vector<uint8_t>& bytes) : words_(bytes.size() / sizeof(int32_t)) {
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
  bool failed() const { return !ok_; }
  // Everything read, nothing left over.
  bool done() const { return ok_ && pos_ == words_.size(); }

 private:
  std::vector<int32_t> words_;
  size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace

std::vector<uint8_t> EncodeStepPlan(const StepPlan& plan) {
  Writer w;
  w.Put(kMagic);
  w.Put(plan.block_size);
  w.Put(plan.micro_batch);
  w.Put(static_cast<int32_t>(plan.seqs.size()));
  for (const SequenceStep& s : plan.seqs) {
    w.Put64(s.seq_id);
    w.Put(s.num_new_tokens);
    w.Put(s.context_len);
    w.Put(s.all_logits ? 1 : 0);
    w.PutAll(s.block_table);
    w.Put(s.has_sampling ? 1 : 0);
    if (s.has_sampling) {
      const SamplingParams& p = s.sampling;
      for (float f : {p.temperature, p.top_p, p.min_p, p.repetition_penalty}) w.PutFloat(f);
      w.Put(p.top_k);
      w.Put64(static_cast<int64_t>(p.seed));
    }
  }
  w.PutAll(plan.token_ids);
  w.Put(plan.return_logits ? 1 : 0);
  w.Put(static_cast<int32_t>(plan.released_seqs.size()));
  for (int64_t id : plan.released_seqs) w.Put64(id);
  return w.Bytes();
}

StatusOr<StepPlan> DecodeStepPlan(const std::vector<uint8_t>& bytes) {
  Reader r(bytes);
  if (r.Get() != kMagic) return Status::DataLoss("step plan message does not start with the plan marker");
  StepPlan plan;
  plan.block_size = r.Get();
  plan.micro_batch = r.Get();
  const int32_t num_seqs = r.Get();
  if (num_seqs < 0 || static_cast<size_t>(num_seqs) > bytes.size()) {
    return Status::DataLoss("step plan message claims " + std::to_string(num_seqs) + " sequences");
  }
  for (int32_t i = 0; i < num_seqs && !r.failed(); ++i) {
    SequenceStep s;
    s.seq_id = r.Get64();
    s.num_new_tokens = r.Get();
    s.context_len = r.Get();
    s.all_logits = r.Get() != 0;
    s.block_table = r.GetAll();
    s.has_sampling = r.Get() != 0;
    if (s.has_sampling) {
      SamplingParams& p = s.sampling;
      for (float* f : {&p.temperature, &p.top_p, &p.min_p, &p.repetition_penalty}) *f = r.GetFloat();
      p.top_k = r.Get();
      p.seed = static_cast<uint64_t>(r.Get64());
    }
    plan.seqs.push_back(std::move(s));
  }
  plan.token_ids = r.GetAll();
  plan.return_logits = r.Get() != 0;
  const int32_t released = r.Get();
  for (int32_t i = 0; i < released && !r.failed(); ++i) plan.released_seqs.push_back(r.Get64());
  if (!r.done())
    return Status::DataLoss("step plan message of " + std::to_string(bytes.size()) + " bytes is malformed");
  return plan;
}

}  // namespace baton
