// A batch of training sequences as transformers takes it.
#pragma once

#include <cstdint>
#include <vector>

namespace baton {

// num_seqs sequences of seq_len tokens, row-major. Labels are as
// transformers takes them (not shifted; position t+1's label is the target
// of position t); kIgnoreIndex (lm_head_loss.h) masks a position.
struct TrainBatch {
  int num_seqs = 0;
  int seq_len = 0;
  std::vector<int32_t> input_ids;
  std::vector<int32_t> labels;
};

// How many next-token targets of `batch` count toward the mean loss.
int64_t CountTargets(const TrainBatch& batch);

}  // namespace baton
