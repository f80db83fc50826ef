// `baton finetune`'s flags, their validation, and the job description a
// checkpoint records (so a resume can refuse a run that would read other
// data).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "launch/cli/cli_common.h"

namespace baton::cli {

struct FinetuneFlags {
  std::string model_dir = BATON_BUNDLED_MODEL;
  std::string data;
  std::string out;
  int steps = 100;
  double lr = 1e-4;
  int batch_size = 8;        // sequences per optimizer step, all replicas together
  int batch_tokens = 0;      // alternative to --batch-size: tokens per step
  int micro_batch_size = 0;  // sequences per forward/backward; 0: from --micro-batches
  int micro_batches = 0;     // per replica; 0: 1 for pp 1, else the replica's sequences
  int seq_len = 128;
  std::string lr_schedule = "cosine";
  int warmup = 0;
  double weight_decay = 0.01;
  double grad_clip = 1.0;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  bool no_shuffle = false;
  uint64_t seed = 0;
  int pp = 1, dp = 1, zero = 3;
  std::string schedule = "1f1b";
  std::string layers_per_stage;
  bool activation_checkpointing = false;
  bool offload_optimizer = false;
  int checkpoint_every = 0;    // 0: no checkpoints
  std::string checkpoint_dir;  // default: <out>/checkpoints
  int keep_checkpoints = 2;
  std::string resume;  // a checkpoint folder: continue from its latest step
  bool json = false;
  std::string device;  // cpu | cuda; empty: cuda when a GPU is visible
  std::string dtype;   // compute dtype on cuda: bf16 (default) | f32
};

void AddFinetuneFlags(CLI::App& cmd, FinetuneFlags& flags);

// Checks ranges and resolves the derived fields (batch_size from
// batch_tokens, micro_batches, checkpoint_dir). Errors name the flag.
Status ResolveFinetuneFlags(FinetuneFlags& flags);

// What must match for a resumed run to see the same data and schedule.
nlohmann::json FinetuneJobMeta(const FinetuneFlags& flags);
Status CheckResumable(const nlohmann::json& saved, const FinetuneFlags& flags);

}  // namespace baton::cli
