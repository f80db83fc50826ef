// PipelineTrainer: sharded save and resume. Each rank writes only what it
// owns (its units' parameter shards and AdamW moments); the root commits the
// step once every rank's file is there.
#include <map>

#include "runtime/training/pipeline_trainer.h"
#include "runtime/training/train_checkpoint.h"

namespace baton {

Status PipelineTrainer::SaveCheckpoint(const std::string& dir, int64_t step, const nlohmann::json& job_meta) {
  const int world = pipeline_size() * dp_size(), rank = dp_rank() * pipeline_size() + pipeline_rank();
  RankTrainState state;
  const auto& units = stage_->units();
  for (size_t i = 0; i < units.size(); ++i) {
    state.tensors.emplace_back("param." + units[i]->name(), ToHost(units[i]->shard()));
    if (i < adamw_->exp_avg().size()) {
      state.tensors.emplace_back("exp_avg." + units[i]->name(), ToHost(adamw_->exp_avg()[i]));
      state.tensors.emplace_back("exp_avg_sq." + units[i]->name(), ToHost(adamw_->exp_avg_sq()[i]));
    }
  }
  state.meta = {{"adam_step", adamw_->step()}, {"stage", pipeline_rank()}, {"dp_rank", dp_rank()}};
  BATON_RETURN_IF_ERROR(SaveRankCheckpoint(dir, step, rank, world, state));
  // Every rank has written once the sum over the job arrives.
  std::vector<double> saved = {1.0};
  BATON_RETURN_IF_ERROR(SumOverJob(saved));
  if (!is_root()) return Status::Ok();
  nlohmann::json meta = job_meta;
  meta["step"] = step;
  meta["pp"] = pipeline_size();
  meta["dp"] = dp_size();
  return CommitCheckpoint(dir, step, meta);
}

StatusOr<nlohmann::json> PipelineTrainer::LoadCheckpoint(const std::string& dir, int64_t step) {
  const int world = pipeline_size() * dp_size(), rank = dp_rank() * pipeline_size() + pipeline_rank();
  BATON_ASSIGN_OR_RETURN(nlohmann::json meta, LoadCheckpointMeta(dir, step));
  if (meta.value("pp", 1) != pipeline_size() || meta.value("dp", 1) != dp_size()) {
    return Status::InvalidArgument(
        "--resume " + dir + ": step " + std::to_string(step) + " was saved with pp " +
        std::to_string(meta.value("pp", 1)) + " x dp " + std::to_string(meta.value("dp", 1)) + "; this job is pp " +
        std::to_string(pipeline_size()) + " x dp " + std::to_string(dp_size()) + " (resume with the same layout)");
  }
  BATON_ASSIGN_OR_RETURN(RankTrainState state, LoadRankCheckpoint(dir, step, rank, world));
  std::map<std::string, Tensor> saved;
  for (auto& [name, t] : state.tensors) saved[name] = t;
  auto take = [&](const std::string& name, int64_t numel) -> StatusOr<Tensor> {
    auto it = saved.find(name);
    if (it == saved.end() || it->second.numel() != numel || it->second.dtype() != DType::kF32) {
      return Status::InvalidArgument("--resume " + dir + ": rank " + std::to_string(rank) + " has no float32 '" + name +
                                     "' of " + std::to_string(numel) +
                                     " values (saved from another model or stage split?)");
    }
    return it->second;
  };
  std::vector<Tensor> exp_avg, exp_avg_sq;
  const int64_t adam_step = state.meta.value("adam_step", int64_t{0});
  for (auto& unit : stage_->units()) {
    const int64_t n = unit->shard().numel();
    BATON_ASSIGN_OR_RETURN(Tensor values, take("param." + unit->name(), n));
    ops_->backend().CopyToDevice(values, unit->shard());
    unit->RefreshCompute();
    if (adam_step == 0) continue;
    BATON_ASSIGN_OR_RETURN(Tensor m, take("exp_avg." + unit->name(), n));
    BATON_ASSIGN_OR_RETURN(Tensor v, take("exp_avg_sq." + unit->name(), n));
    exp_avg.push_back(ToMomentMemory(m.Reshape(unit->shard().shape())));
    exp_avg_sq.push_back(ToMomentMemory(v.Reshape(unit->shard().shape())));
  }
  adamw_->Restore(adam_step, std::move(exp_avg), std::move(exp_avg_sq));
  return meta;
}

}  // namespace baton
