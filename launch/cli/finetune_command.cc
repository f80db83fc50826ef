// `baton finetune`: fine-tuning (AdamW; float32 on the CPU, bf16 with float32
// master weights on a GPU) of a Hugging Face model folder on a text / JSONL
// file, over pp x dp ranks (mpirun -np pp*dp):
// pipeline stages with the GPipe or 1F1B schedule, ZeRO-3 (or replicated)
// data parallelism, activation checkpointing, sharded checkpoints with
// resume, and export as a Hugging Face folder that `baton generate` loads.
// Rank 0 prints one progress line per step on stderr, or with --json one
// JSON object per step on stdout, then {"done": true, ...} with the loss of
// the last batch after the last update.
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "launch/cli/finetune_device.h"
#include "launch/cli/finetune_flags.h"
#include "runtime/comm/process_mesh.h"
#include "runtime/training/lr_schedule.h"
#include "runtime/training/pipeline_trainer.h"
#include "runtime/training/train_checkpoint.h"
#include "runtime/training/training_data.h"
#include "stages/stage_partition.h"

namespace baton::cli {
namespace {

StatusOr<SequenceSampler> LoadSampler(const FinetuneFlags& f, const ModelConfig& config, bool verbose) {
  std::unique_ptr<Tokenizer> tokenizer;
  auto loaded = Tokenizer::FromFile(f.model_dir + "/tokenizer.json");
  if (loaded.ok()) tokenizer = std::move(loaded).value();
  std::optional<int32_t> eos;
  if (!config.eos_token_ids.empty()) eos = config.eos_token_ids.front();
  BATON_ASSIGN_OR_RETURN(TokenStream tokens, LoadTrainingData(f.data, tokenizer.get(), eos));
  std::vector<TrainSequence> sequences = PackSequences(tokens, f.seq_len);
  if (sequences.empty()) {
    return Status::InvalidArgument("--data " + f.data + ": " + std::to_string(tokens.ids.size()) +
                                   " tokens do not fill one --seq-len " + std::to_string(f.seq_len) + " sequence");
  }
  if (verbose) {
    std::fprintf(stderr, "baton finetune: %zu tokens -> %zu sequences of %d; %d steps of %d sequences\n",
                 tokens.ids.size(), sequences.size(), f.seq_len, f.steps, f.batch_size);
  }
  return SequenceSampler(std::move(sequences), !f.no_shuffle, f.seed);
}

void PrintMemory(const PipelineTrainer& trainer, int rank, const StageRange& range) {
  const TrainMemory m = trainer.memory();
  auto mb = [](size_t bytes) { return static_cast<double>(bytes) / (1 << 20); };
  std::fprintf(stderr,
               "rank %d: layers [%d, %d): parameters %.2f MB, gradients %.2f MB, optimizer %.2f MB%s, "
               "peak gathered %.2f MB, peak activations %.2f MB\n",
               rank, range.first_layer, range.last_layer, mb(m.parameter_bytes), mb(m.gradient_bytes),
               mb(m.optimizer_bytes), m.optimizer_on_host ? " (host)" : "", mb(m.peak_gathered_bytes),
               mb(m.peak_activation_bytes));
}

std::string Bar(int done, int total) {
  const int width = 20, filled = total > 0 ? done * width / total : width;
  return "[" + std::string(static_cast<size_t>(filled), '#') + std::string(static_cast<size_t>(width - filled), '.') +
         "]";
}

void ReportStep(const FinetuneFlags& f, int step, const LossSum& loss, double lr, double grad_norm, double tokens_per_s,
                double eta) {
  if (f.json) {
    nlohmann::json line = {{"step", step},           {"loss", loss.mean()},          {"lr", lr},
                           {"grad_norm", grad_norm}, {"tokens_per_s", tokens_per_s}, {"eta_s", eta}};
    std::printf("%s\n", line.dump().c_str());
    std::fflush(stdout);
  } else {
    std::fprintf(stderr, "step %d/%d %s loss %.4f  lr %.3g  grad_norm %.3f  %.0f tok/s  ETA %.0fs\n", step, f.steps,
                 Bar(step, f.steps).c_str(), loss.mean(), lr, grad_norm, tokens_per_s, eta);
  }
}

Status Train(FinetuneFlags f, RankContext& ranks) {
  BATON_RETURN_IF_ERROR(ResolveFinetuneFlags(f));
  BATON_ASSIGN_OR_RETURN(LrScheduleKind kind, ParseLrScheduleKind(f.lr_schedule));
  BATON_ASSIGN_OR_RETURN(ScheduleKind schedule, ParseScheduleKind(f.schedule));
  const MeshShape shape{f.pp, f.dp};
  BATON_RETURN_IF_ERROR(ValidateMeshShape(shape, ranks.size()));
  BATON_ASSIGN_OR_RETURN(ModelConfig config, LoadModelConfig(f.model_dir));
  if (f.seq_len > config.max_positions) {
    return Status::InvalidArgument("--seq-len " + std::to_string(f.seq_len) + " exceeds the model's max_positions " +
                                   std::to_string(config.max_positions));
  }
  std::vector<int> override_layers;
  if (!f.layers_per_stage.empty()) {
    BATON_ASSIGN_OR_RETURN(std::vector<int32_t> parsed, ParseIdList(f.layers_per_stage, "--layers-per-stage"));
    override_layers.assign(parsed.begin(), parsed.end());
  }
  BATON_ASSIGN_OR_RETURN(std::vector<StageRange> stages, PartitionLayers(config, f.pp, override_layers));
  const bool root = ranks.rank() == 0;
  BATON_ASSIGN_OR_RETURN(SequenceSampler sampler, LoadSampler(f, config, root));

  std::optional<ProcessMesh> mesh;
  if (ranks.world() != nullptr) {
    BATON_ASSIGN_OR_RETURN(ProcessMesh made, ProcessMesh::Create(*ranks.world(), shape));
    mesh.emplace(std::move(made));
  }
  TrainerOptions options;
  options.zero_stage = f.zero;
  options.schedule = schedule;
  options.micro_batches = f.micro_batches;
  options.activation_checkpointing = f.activation_checkpointing;
  options.offload_optimizer = f.offload_optimizer;
  options.adamw = {f.lr, f.beta1, f.beta2, f.eps, f.weight_decay};
  // Declared before the trainer, so it outlives it.
  BATON_ASSIGN_OR_RETURN(std::unique_ptr<FinetuneDevice> device,
                         FinetuneDevice::Open(f, ranks.local_rank(), mesh ? &*mesh : nullptr));
  BATON_ASSIGN_OR_RETURN(
      auto trainer,
      PipelineTrainer::Create(f.model_dir, stages, options, mesh ? &mesh->pipeline() : nullptr,
                              mesh && f.dp > 1 ? &mesh->data_parallel() : nullptr, device->trainer_device()));
  int first_step = 0;
  if (f.resume.empty() && f.checkpoint_every > 0) {
    StatusOr<int64_t> existing = LatestCheckpointStep(f.checkpoint_dir);
    if (existing.ok()) {
      return Status::InvalidArgument("--checkpoint-dir " + f.checkpoint_dir +
                                     " already holds checkpoints (latest: step " + std::to_string(*existing) +
                                     "): pass --resume " + f.checkpoint_dir +
                                     " to continue that run, or choose another --out / --checkpoint-dir");
    }
  }
  if (!f.resume.empty()) {
    BATON_ASSIGN_OR_RETURN(int64_t saved_step, LatestCheckpointStep(f.resume));
    BATON_ASSIGN_OR_RETURN(nlohmann::json meta, trainer->LoadCheckpoint(f.resume, saved_step));
    BATON_RETURN_IF_ERROR(CheckResumable(meta, f));
    first_step = static_cast<int>(saved_step);
    if (root) std::fprintf(stderr, "baton finetune: resumed from %s at step %d\n", f.resume.c_str(), first_step);
  }

  const LrSchedule lr_schedule{kind, f.lr, f.warmup, f.steps};
  const auto start = std::chrono::steady_clock::now();
  for (int step = first_step; step < f.steps; ++step) {
    const auto step_start = std::chrono::steady_clock::now();
    const TrainBatch batch = sampler.Batch(step, f.batch_size);
    BATON_ASSIGN_OR_RETURN(LossSum loss, trainer->ComputeGradients(batch));
    const double lr = lr_schedule.LearningRate(step);
    BATON_ASSIGN_OR_RETURN(double grad_norm, trainer->ApplyUpdate(lr, f.grad_clip));
    if (step == first_step)
      PrintMemory(*trainer, ranks.rank(), stages[static_cast<size_t>(mesh ? mesh->coord().pp_stage : 0)]);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - step_start).count();
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double eta = elapsed / (step + 1 - first_step) * (f.steps - step - 1);
    if (root) {
      ReportStep(f, step + 1, loss, lr, grad_norm,
                 static_cast<double>(batch.input_ids.size()) / std::max(seconds, 1e-9), eta);
    }
    if (f.checkpoint_every > 0 && (step + 1) % f.checkpoint_every == 0 && step + 1 < f.steps) {
      BATON_RETURN_IF_ERROR(trainer->SaveCheckpoint(f.checkpoint_dir, step + 1, FinetuneJobMeta(f)));
      if (root) BATON_RETURN_IF_ERROR(PruneCheckpoints(f.checkpoint_dir, f.keep_checkpoints));
    }
  }
  // The loss of the last batch after the last update: with the whole data
  // set as one batch, the "after the last step" number of a reference run.
  BATON_ASSIGN_OR_RETURN(LossSum final_loss, trainer->Evaluate(sampler.Batch(f.steps - 1, f.batch_size)));
  BATON_RETURN_IF_ERROR(trainer->ExportHf(f.out));
  if (!root) return Status::Ok();
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
  CLI::App* cmd = app.add_subcommand("finetune",
                                     "Fine-tune a model on a text/JSONL file (CPU or GPU; "
                                     "mpirun -np pp*dp for pipeline / ZeRO-3 layouts)");
  AddFinetuneFlags(*cmd, *flags);
  cmd->callback([flags, &run] {
    run = [flags]() -> Status {
      BATON_ASSIGN_OR_RETURN(std::unique_ptr<RankContext> ranks, RankContext::Join(0));
      Status status = Train(*flags, *ranks);
      return status.ok() ? status : ranks->Fail(status);
    };
  });
}

}  // namespace baton::cli
