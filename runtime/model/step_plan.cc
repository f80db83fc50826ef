#include "runtime/model/step_plan.h"

#include <algorithm>
#include <string>

namespace baton {

std::vector<int32_t> StepPlan::LogitRows() const {
  std::vector<int32_t> rows;
  int32_t start = 0;
  for (const SequenceStep& s : seqs) {
    if (s.all_logits) {
      for (int32_t i = 0; i < s.num_new_tokens; ++i) rows.push_back(start + i);
    } else if (s.num_new_tokens > 0) {
      rows.push_back(start + s.num_new_tokens - 1);
    }
    start += s.num_new_tokens;
  }
  return rows;
}

std::vector<int32_t> StepPlan::Positions() const {
  std::vector<int32_t> pos;
  pos.reserve(token_ids.size());
  for (const SequenceStep& s : seqs) {
    for (int32_t i = 0; i < s.num_new_tokens; ++i) pos.push_back(s.context_len - s.num_new_tokens + i);
  }
  return pos;
}

Status StepPlan::Validate() const {
  size_t total = 0;
  for (const SequenceStep& s : seqs) {
    const std::string who = "step plan: sequence " + std::to_string(s.seq_id);
    if (s.num_new_tokens <= 0 || s.num_new_tokens > s.context_len) {
      return Status::Internal(who + " has " + std::to_string(s.num_new_tokens) + " new tokens of " +
                              std::to_string(s.context_len));
    }
    if (continues_previous && (s.num_new_tokens != 1 || !s.sample || s.has_sampling)) {
      return Status::Internal(who + " continues the previous step but is not a registered one-token decode");
    }
    if (static_cast<int64_t>(s.block_table.size()) * block_size < s.context_len) {
      return Status::Internal(who + " has too few KV blocks for " + std::to_string(s.context_len) + " tokens");
    }
    total += static_cast<size_t>(s.num_new_tokens);
  }
  if (total != token_ids.size()) {
    return Status::Internal("step plan: " + std::to_string(token_ids.size()) + " token ids for " +
                            std::to_string(total) + " new tokens");
  }
  return Status::Ok();
}

Status ValidateStepPlan(const StepPlan& plan, const ModelConfig& config) {
  BATON_RETURN_IF_ERROR(plan.Validate());
  for (int32_t id : plan.token_ids) {
    if (id < 0 || id >= config.vocab_size) {
      return Status::OutOfRange("token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                                std::to_string(config.vocab_size) + ")");
    }
  }
  for (const SequenceStep& s : plan.seqs) {
    if (s.context_len > config.max_positions) {
      return Status::OutOfRange("sequence of " + std::to_string(s.context_len) +
                                " tokens exceeds the model's context of " + std::to_string(config.max_positions));
    }
    if (!s.has_sampling) continue;  // the fields below are read only when a sampler is registered
    const std::string who = "sequence " + std::to_string(s.seq_id) + ": ";
    BATON_RETURN_IF_ERROR(s.sampling.Validate());
    if (s.logprobs < -1 || s.logprobs > kMaxLogprobs) {
      return Status::InvalidArgument(who + "logprobs must be in [-1, " + std::to_string(kMaxLogprobs) + "] (got " +
                                     std::to_string(s.logprobs) + ")");
    }
    if (s.sampler_draws_done < 0) {
      return Status::InvalidArgument(who + "sampler_draws_done must be >= 0 (got " +
                                     std::to_string(s.sampler_draws_done) + ")");
    }
  }
  return Status::Ok();
}

static Tensor HostI32(const std::vector<int32_t>& v, const Shape& shape) {
  Tensor t = Tensor::Empty(shape, DType::kI32);
  std::copy(v.begin(), v.end(), t.data<int32_t>());
  return t;
}

DeviceStepPlan UploadStepPlan(const StepPlan& plan, Backend& backend) {
  const int num_seqs = static_cast<int>(plan.seqs.size());
  size_t max_blocks = 1;
  int max_query = 0, max_context = 0;
  for (const SequenceStep& s : plan.seqs) {
    max_blocks = std::max(max_blocks, s.block_table.size());
    max_query = std::max(max_query, s.num_new_tokens);
    max_context = std::max(max_context, s.context_len);
  }
  std::vector<int32_t> query_start = {0}, context_len, tables(num_seqs * max_blocks, -1), slots;
  for (int i = 0; i < num_seqs; ++i) {
    const SequenceStep& s = plan.seqs[i];
    query_start.push_back(query_start.back() + s.num_new_tokens);
    context_len.push_back(s.context_len);
    std::copy(s.block_table.begin(), s.block_table.end(), tables.begin() + i * max_blocks);
    for (int32_t pos = s.context_len - s.num_new_tokens; pos < s.context_len; ++pos) {
      slots.push_back(s.block_table[pos / plan.block_size] * plan.block_size + pos % plan.block_size);
    }
  }
  const int64_t n = plan.num_tokens();
  const std::vector<int32_t> rows = plan.LogitRows();
  DeviceStepPlan d;
  d.attention.query_start = backend.Upload(HostI32(query_start, {num_seqs + 1}), DType::kI32);
  d.attention.context_len = backend.Upload(HostI32(context_len, {num_seqs}), DType::kI32);
  d.attention.block_tables = backend.Upload(HostI32(tables, {num_seqs, static_cast<int64_t>(max_blocks)}), DType::kI32);
  d.attention.slot_mapping = backend.Upload(HostI32(slots, {n}), DType::kI32);
  d.attention.num_seqs = num_seqs;
  d.attention.max_query_len = max_query;
  d.attention.max_context_len = max_context;
  const bool all_fresh = std::all_of(plan.seqs.begin(), plan.seqs.end(),
                                     [](const SequenceStep& s) { return s.num_new_tokens == s.context_len; });
  if (all_fresh && num_seqs > 0) d.attention.fresh_query_start.assign(query_start.begin(), query_start.end());
  d.token_ids = backend.Upload(HostI32(plan.token_ids, {n}), DType::kI32);
  d.positions = backend.Upload(HostI32(plan.Positions(), {n}), DType::kI32);
  d.logit_rows = backend.Upload(HostI32(rows, {static_cast<int64_t>(rows.size())}), DType::kI32);
  return d;
}

}  // namespace baton
