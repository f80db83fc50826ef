// `baton finetune`: single-rank CPU fine-tuning (float32, AdamW) of a Hugging
// Face model folder on a text / JSONL file, exported as a Hugging Face folder
// that `baton generate` loads. Pipeline / ZeRO-3 layouts come later (issue 6).
// Prints one progress line per step on stderr, or with --json one JSON object
// per step on stdout, then {"done": true, ...} with the loss of the last
// batch after the last update.
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "launch/cli/cli_common.h"
#include "runtime/training/adamw.h"
#include "runtime/training/grad_clip.h"
#include "runtime/training/hf_export.h"
#include "runtime/training/lr_schedule.h"
#include "runtime/training/training_data.h"

namespace baton::cli {
namespace {

struct FinetuneFlags {
  std::string model_dir = BATON_BUNDLED_MODEL;
  std::string data;
  std::string out;
  int steps = 100;
  double lr = 1e-4;
  int batch_size = 8;
  int micro_batch_size = 0;  // 0: the whole batch at once
  int seq_len = 128;
  std::string lr_schedule = "cosine";
  int warmup = 0;
  double weight_decay = 0.01;
  double grad_clip = 1.0;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  bool no_shuffle = false;
  uint64_t seed = 0;
  bool json = false;
};

Status CheckFlags(const FinetuneFlags& f) {
  auto positive = [](int v, const char* flag) {
    return v > 0 ? Status::Ok()
                 : Status::InvalidArgument(std::string(flag) + " must be positive (got " + std::to_string(v) + ")");
  };
  BATON_RETURN_IF_ERROR(positive(f.steps, "--steps"));
  BATON_RETURN_IF_ERROR(positive(f.batch_size, "--batch-size"));
  BATON_RETURN_IF_ERROR(positive(f.seq_len, "--seq-len"));
  if (f.seq_len < 2)
    return Status::InvalidArgument("--seq-len must be at least 2 (got " + std::to_string(f.seq_len) + ")");
  if (f.micro_batch_size < 0 || (f.micro_batch_size > 0 && f.batch_size % f.micro_batch_size != 0)) {
    return Status::InvalidArgument("--micro-batch-size " + std::to_string(f.micro_batch_size) +
                                   " must divide --batch-size " + std::to_string(f.batch_size));
  }
  if (f.lr <= 0) return Status::InvalidArgument("--lr must be positive");
  if (f.warmup < 0) return Status::InvalidArgument("--warmup must not be negative");
  if (f.weight_decay < 0) return Status::InvalidArgument("--weight-decay must not be negative");
  if (f.grad_clip < 0) return Status::InvalidArgument("--grad-clip must not be negative (0 = off)");
  if (f.data.empty() || f.out.empty()) return Status::InvalidArgument("--data FILE and --out DIR are required");
  return Status::Ok();
}

// Rows [first, first + count) of a batch's sequences.
TrainBatch Slice(const TrainBatch& b, int first, int count) {
  TrainBatch m;
  m.num_seqs = count;
  m.seq_len = b.seq_len;
  const auto begin = static_cast<int64_t>(first) * b.seq_len, end = begin + int64_t{count} * b.seq_len;
  m.input_ids.assign(b.input_ids.begin() + begin, b.input_ids.begin() + end);
  m.labels.assign(b.labels.begin() + begin, b.labels.begin() + end);
  return m;
}

Status RunFinetune(const FinetuneFlags& f) {
  BATON_RETURN_IF_ERROR(CheckFlags(f));
  BATON_ASSIGN_OR_RETURN(LrScheduleKind kind, ParseLrScheduleKind(f.lr_schedule));
  BATON_ASSIGN_OR_RETURN(std::unique_ptr<TrainingModel> model, TrainingModel::Load(f.model_dir));
  if (f.seq_len > model->config().max_positions) {
    return Status::InvalidArgument("--seq-len " + std::to_string(f.seq_len) + " exceeds the model's max_positions " +
                                   std::to_string(model->config().max_positions));
  }
  std::unique_ptr<Tokenizer> tokenizer;
  auto loaded = Tokenizer::FromFile(f.model_dir + "/tokenizer.json");
  if (loaded.ok()) tokenizer = std::move(loaded).value();
  BATON_ASSIGN_OR_RETURN(std::vector<int32_t> tokens, LoadTrainingTokens(f.data, tokenizer.get()));
  std::vector<std::vector<int32_t>> sequences = PackSequences(tokens, f.seq_len);
  if (sequences.empty()) {
    return Status::InvalidArgument("--data " + f.data + ": " + std::to_string(tokens.size()) +
                                   " tokens do not fill one --seq-len " + std::to_string(f.seq_len) + " sequence");
  }
  SequenceSampler sampler(std::move(sequences), !f.no_shuffle, f.seed);
  std::fprintf(stderr, "baton finetune: %zu tokens -> %zu sequences of %d; %d steps of %d sequences\n", tokens.size(),
               sampler.size(), f.seq_len, f.steps, f.batch_size);

  AdamWOptions options{f.lr, f.beta1, f.beta2, f.eps, f.weight_decay};
  AdamW adamw(options);
  const LrSchedule schedule{kind, f.lr, f.warmup, f.steps};
  const int micro = f.micro_batch_size > 0 ? f.micro_batch_size : f.batch_size;
  const auto start = std::chrono::steady_clock::now();
  for (int step = 0; step < f.steps; ++step) {
    const auto step_start = std::chrono::steady_clock::now();
    const TrainBatch batch = sampler.Batch(step, f.batch_size);
    const int64_t targets = CountTargets(batch);
    model->ZeroGrad();
    LossSum loss;
    for (int first = 0; first < f.batch_size; first += micro) {
      BATON_ASSIGN_OR_RETURN(
          LossSum part,
          model->ForwardBackward(Slice(batch, first, micro), 1.0f / static_cast<float>(std::max<int64_t>(targets, 1))));
      loss.sum += part.sum;
      loss.tokens += part.tokens;
    }
    std::vector<Tensor> grads = model->Gradients();
    const double grad_norm = ClipGradNorm(grads, f.grad_clip);
    const double lr = schedule.LearningRate(step);
    std::vector<Tensor> params = model->Parameters();
    adamw.Step(params, grads, lr);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - step_start).count();
    const double tokens_per_s = static_cast<double>(batch.input_ids.size()) / std::max(seconds, 1e-9);
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double eta = elapsed / (step + 1) * (f.steps - step - 1);
    if (f.json) {
      nlohmann::json line = {{"step", step + 1},       {"loss", loss.mean()},          {"lr", lr},
                             {"grad_norm", grad_norm}, {"tokens_per_s", tokens_per_s}, {"eta_s", eta}};
      std::printf("%s\n", line.dump().c_str());
      std::fflush(stdout);
    } else {
      std::fprintf(stderr, "step %d/%d  loss %.4f  lr %.3g  grad_norm %.3f  %.0f tok/s  ETA %.0fs\n", step + 1, f.steps,
                   loss.mean(), lr, grad_norm, tokens_per_s, eta);
    }
  }
  // The loss of the last batch after the last update: with the whole data
  // set as one batch, the "after the last step" number of a reference run.
  BATON_ASSIGN_OR_RETURN(LossSum final_loss, model->Evaluate(sampler.Batch(f.steps - 1, f.batch_size)));
  BATON_RETURN_IF_ERROR(ExportHfModel(*model, f.model_dir, f.out));
  if (f.json) {
    nlohmann::json done = {{"done", true}, {"steps", f.steps}, {"final_loss", final_loss.mean()}, {"out", f.out}};
    std::printf("%s\n", done.dump().c_str());
  } else {
    std::fprintf(stderr, "final loss %.4f; model written to %s\n", final_loss.mean(), f.out.c_str());
  }
  return Status::Ok();
}

}  // namespace

void RegisterFinetuneCommand(CLI::App& app, CommandRun& run) {
  auto flags = std::make_shared<FinetuneFlags>();
  CLI::App* cmd = app.add_subcommand("finetune", "Fine-tune a model on a text/JSONL file (one CPU rank, float32)");
  cmd->add_option("--model", flags->model_dir, "Hugging Face model folder");
  cmd->add_option("--data", flags->data, "plain text, or JSONL of {\"text\"} / {\"input_ids\"}")->required();
  cmd->add_option("--out", flags->out, "folder for the fine-tuned model")->required();
  cmd->add_option("--steps", flags->steps, "optimizer steps");
  cmd->add_option("--lr", flags->lr, "peak learning rate");
  cmd->add_option("--batch-size", flags->batch_size, "sequences per optimizer step");
  cmd->add_option("--micro-batch-size", flags->micro_batch_size, "sequences per forward/backward (accumulated)");
  cmd->add_option("--seq-len", flags->seq_len, "tokens per packed sequence");
  cmd->add_option("--lr-schedule", flags->lr_schedule, "constant | cosine");
  cmd->add_option("--warmup", flags->warmup, "linear warmup steps");
  cmd->add_option("--weight-decay", flags->weight_decay, "AdamW decoupled weight decay");
  cmd->add_option("--grad-clip", flags->grad_clip, "global gradient-norm clip (0 = off)");
  cmd->add_option("--beta1", flags->beta1, "AdamW beta1");
  cmd->add_option("--beta2", flags->beta2, "AdamW beta2");
  cmd->add_option("--eps", flags->eps, "AdamW eps");
  cmd->add_flag("--no-shuffle", flags->no_shuffle, "keep the file's sequence order");
  cmd->add_option("--seed", flags->seed, "shuffle seed");
  cmd->add_flag("--json", flags->json, "one JSON object per step on stdout");
  cmd->callback([flags, &run] { run = [flags] { return RunFinetune(*flags); }; });
}

}  // namespace baton::cli
