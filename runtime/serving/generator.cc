#include "runtime/serving/generator.h"

namespace baton {

Generator::Generator(ModelRunner& runner, const Tokenizer* tokenizer, KvBlockManager& blocks, int micro_batches)
    : Generator(runner, tokenizer, blocks, SchedulerOptions{.micro_batches = micro_batches}) {}

Generator::Generator(ModelRunner& runner, const Tokenizer* tokenizer, KvBlockManager& blocks, SchedulerOptions options)
    : scheduler_(runner, tokenizer, blocks, options) {}

StatusOr<std::vector<GenerationResult>> Generator::Generate(const std::vector<GenerationRequest>& requests,
                                                            const TokenCallback& on_token) {
  for (size_t i = 0; i < requests.size(); ++i) {
    Status st = Validate(requests[i]);
    if (!st.ok()) return requests.size() == 1 ? st : st.WithContext("request " + std::to_string(i));
  }
  std::vector<GenerationResult> results(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    scheduler_.Add(next_id_++, requests[i], [&results, &on_token, i](const RequestEvent& e) {
      if (e.final) {
        results[i] = e.result;
      } else if (on_token) {
        for (int32_t token : e.token_ids) on_token(i, token, e.text_delta);
      }
    });
  }
  while (!scheduler_.Idle()) {
    Status st = scheduler_.Step();
    if (!st.ok()) {
      scheduler_.FailAll(st);
      return st;
    }
  }
  return results;
}

}  // namespace baton
