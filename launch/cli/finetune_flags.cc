#include "launch/cli/finetune_flags.h"

#include "runtime/backend/cuda/make_cuda_backend.h"

namespace baton::cli {

void AddFinetuneFlags(CLI::App& cmd, FinetuneFlags& f) {
  cmd.add_option("--model", f.model_dir, "Hugging Face model folder");
  cmd.add_option("--data", f.data, "plain text, or JSONL of {\"text\"} / {\"prompt\",\"completion\"} / {\"input_ids\"}")
      ->required();
  cmd.add_option("--out", f.out, "folder for the fine-tuned model (Hugging Face layout)")->required();
  cmd.add_option("--steps", f.steps, "optimizer steps");
  cmd.add_option("--lr", f.lr, "peak learning rate");
  cmd.add_option("--batch-size", f.batch_size, "sequences per optimizer step (all replicas together)");
  cmd.add_option("--batch-tokens", f.batch_tokens, "tokens per optimizer step (instead of --batch-size)");
  cmd.add_option("--micro-batch-size", f.micro_batch_size, "sequences per forward/backward (accumulated)");
  cmd.add_option("--micro-batches", f.micro_batches,
                 "micro-batches per replica and step (default: 1 with --pp 1, "
                 "else one sequence each)");
  cmd.add_option("--seq-len", f.seq_len, "tokens per packed sequence");
  cmd.add_option("--lr-schedule", f.lr_schedule, "constant | cosine");
  cmd.add_option("--warmup", f.warmup, "linear warmup steps");
  cmd.add_option("--weight-decay", f.weight_decay, "AdamW decoupled weight decay");
  cmd.add_option("--grad-clip", f.grad_clip, "global gradient-norm clip (0 = off)");
  cmd.add_option("--beta1", f.beta1, "AdamW beta1");
  cmd.add_option("--beta2", f.beta2, "AdamW beta2");
  cmd.add_option("--eps", f.eps, "AdamW eps");
  cmd.add_flag("--no-shuffle", f.no_shuffle, "keep the file's sequence order");
  cmd.add_option("--seed", f.seed, "shuffle seed");
  cmd.add_option("--pp", f.pp, "pipeline stages");
  cmd.add_option("--dp", f.dp, "data-parallel replicas (mpirun -np pp*dp)");
  cmd.add_option("--zero", f.zero, "0: replicate model states across replicas; 3: shard them (ZeRO-3)");
  cmd.add_option("--schedule", f.schedule, "pipeline schedule: gpipe | 1f1b");
  cmd.add_option("--layers-per-stage", f.layers_per_stage, "layers of each stage, e.g. 6,10 (default: balanced)");
  cmd.add_flag("--activation-checkpointing", f.activation_checkpointing,
               "keep only each layer's input; recompute the layer in backward");
  cmd.add_flag("--offload-optimizer", f.offload_optimizer,
               "keep AdamW's moments in host memory and run the update on the CPU (saves 8 bytes/parameter "
               "of GPU memory)");
  cmd.add_option("--checkpoint-every", f.checkpoint_every, "save a sharded checkpoint every N steps (0: never)");
  cmd.add_option("--checkpoint-dir", f.checkpoint_dir, "where checkpoints go (default: OUT/checkpoints)");
  cmd.add_option("--keep-checkpoints", f.keep_checkpoints, "how many checkpoints to keep");
  cmd.add_option("--resume", f.resume, "continue from the latest checkpoint in this folder");
  cmd.add_flag("--json", f.json, "one JSON object per step on stdout");
  cmd.add_option("--device", f.device, "cpu or cuda (default: cuda when a GPU is visible; one GPU per rank)")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  cmd.add_option("--dtype", f.dtype,
                 "compute dtype on cuda: bf16 (default; float32 master weights, gradients and moments) or f32")
      ->check(CLI::IsMember({"bf16", "f32"}));
}

Status ResolveFinetuneFlags(FinetuneFlags& f) {
  auto positive = [](int v, const char* flag) {
    return v > 0 ? Status::Ok()
                 : Status::InvalidArgument(std::string(flag) + " must be positive (got " + std::to_string(v) + ")");
  };
  BATON_RETURN_IF_ERROR(positive(f.steps, "--steps"));
  BATON_RETURN_IF_ERROR(positive(f.seq_len, "--seq-len"));
  BATON_RETURN_IF_ERROR(positive(f.pp, "--pp"));
  BATON_RETURN_IF_ERROR(positive(f.dp, "--dp"));
  BATON_RETURN_IF_ERROR(positive(f.keep_checkpoints, "--keep-checkpoints"));
  if (f.seq_len < 2)
    return Status::InvalidArgument("--seq-len must be at least 2 (got " + std::to_string(f.seq_len) + ")");
  if (f.batch_tokens < 0) return Status::InvalidArgument("--batch-tokens must not be negative");
  if (f.batch_tokens > 0) {
    if (f.batch_tokens % f.seq_len != 0) {
      return Status::InvalidArgument("--batch-tokens " + std::to_string(f.batch_tokens) +
                                     " is not a multiple of --seq-len " + std::to_string(f.seq_len));
    }
    f.batch_size = f.batch_tokens / f.seq_len;
  }
  BATON_RETURN_IF_ERROR(positive(f.batch_size, "--batch-size"));
  if (f.batch_size % f.dp != 0) {
    return Status::InvalidArgument("--batch-size " + std::to_string(f.batch_size) + " is not a multiple of --dp " +
                                   std::to_string(f.dp) + " (every replica takes an equal share)");
  }
  const int share = f.batch_size / f.dp;
  if (f.micro_batch_size < 0 || f.micro_batches < 0) {
    return Status::InvalidArgument("--micro-batch-size and --micro-batches must not be negative");
  }
  if (f.micro_batch_size > 0) {
    if (share % f.micro_batch_size != 0) {
      return Status::InvalidArgument("--micro-batch-size " + std::to_string(f.micro_batch_size) + " must divide the " +
                                     std::to_string(share) + " sequences of each replica");
    }
    f.micro_batches = share / f.micro_batch_size;
  } else if (f.micro_batches == 0) {
    f.micro_batches = f.pp == 1 ? 1 : share;
  }
  if (share % f.micro_batches != 0) {
    return Status::InvalidArgument("--micro-batches " + std::to_string(f.micro_batches) + " must divide the " +
                                   std::to_string(share) + " sequences of each replica");
  }
  if (f.zero != 0 && f.zero != 3)
    return Status::InvalidArgument("--zero must be 0 or 3 (got " + std::to_string(f.zero) + ")");
  if (!(f.lr > 0)) return Status::InvalidArgument("--lr must be positive");
  if (f.warmup < 0) return Status::InvalidArgument("--warmup must not be negative");
  if (!(f.weight_decay >= 0)) return Status::InvalidArgument("--weight-decay must not be negative");
  if (!(f.grad_clip >= 0)) return Status::InvalidArgument("--grad-clip must not be negative (0 = off)");
  if (f.checkpoint_every < 0) return Status::InvalidArgument("--checkpoint-every must not be negative");
  if (f.data.empty() || f.out.empty()) return Status::InvalidArgument("--data FILE and --out DIR are required");
  if (f.checkpoint_dir.empty()) f.checkpoint_dir = f.out + "/checkpoints";
  if (f.device.empty()) f.device = CudaDeviceCount() > 0 ? "cuda" : "cpu";
  if (f.dtype.empty()) f.dtype = f.device == "cuda" ? "bf16" : "f32";
  if (f.device == "cpu" && f.dtype != "f32") {
    return Status::InvalidArgument("--dtype " + f.dtype + " needs --device cuda (the CPU trains in f32)");
  }
  return Status::Ok();
}

nlohmann::json FinetuneJobMeta(const FinetuneFlags& f) {
  return {{"model", f.model_dir},       {"data", f.data}, {"seq_len", f.seq_len},
          {"batch_size", f.batch_size}, {"seed", f.seed}, {"no_shuffle", f.no_shuffle},
          {"steps", f.steps},           {"lr", f.lr},     {"lr_schedule", f.lr_schedule},
          {"warmup", f.warmup},         {"zero", f.zero}, {"micro_batches", f.micro_batches}};
}

Status CheckResumable(const nlohmann::json& saved, const FinetuneFlags& f) {
  const nlohmann::json now = FinetuneJobMeta(f);
  // The data stream and the learning-rate schedule must be the same.
  for (const char* key :
       {"data", "seq_len", "batch_size", "seed", "no_shuffle", "steps", "lr", "lr_schedule", "warmup"}) {
    if (saved.contains(key) && saved[key] != now[key]) {
      return Status::InvalidArgument("--resume: the checkpoint was made with " + std::string(key) + " = " +
                                     saved[key].dump() + ", this run has " + now[key].dump());
    }
  }
  return Status::Ok();
}

}  // namespace baton::cli
