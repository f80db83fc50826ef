// The fixtures' training reference reproduced by one pp x dp layout under
// mpirun: the same losses, gradient norms, step-1 gradients and step-3
// parameters as transformers, within the one-process test's tolerances.
//   mpirun -np N train_layout_test MODEL PP DP ZERO SCHEDULE MICRO_BATCHES CHECKPOINTING
// Rank 0 prints TRAIN_LAYOUT ok, or each failure; any failure exits 1.
#include <cstdio>
#include <string>

#include "runtime/comm/abort_job.h"
#include "runtime/comm/comm_options.h"
#include "runtime/comm/mpi_environment.h"
#include "runtime/comm/process_mesh.h"
#include "stages/stage_partition.h"
#include "tests/unit/training/train_reference.h"

namespace baton {
namespace {

void Check(const Status& s) {
  if (!s.ok()) AbortJob(s);
}

int Run(int argc, char** argv) {
  auto env = MpiEnvironment::Init(&argc, &argv);
  if (!env.ok()) AbortJob(env.status());
  if (argc != 8) {
    std::fprintf(stderr, "usage: train_layout_test MODEL PP DP ZERO SCHEDULE MICRO_BATCHES CHECKPOINTING\n");
    return 2;
  }
  auto options = CommOptionsFromEnv("world");
  if (!options.ok()) AbortJob(options.status());
  auto world = (*env)->World(*options);
  if (!world.ok()) AbortJob(world.status());
  const MeshShape shape{std::stoi(argv[2]), std::stoi(argv[3])};
  auto mesh = ProcessMesh::Create(**world, shape);
  if (!mesh.ok()) AbortJob(mesh.status());

  auto ref = testing::TrainReference::Load(argv[1]);
  if (!ref.ok()) AbortJob(ref.status());
  auto config = LoadModelConfig(ref->model_dir());
  if (!config.ok()) AbortJob(config.status());
  auto stages = PartitionLayers(*config, shape.pp);
  if (!stages.ok()) AbortJob(stages.status());
  TrainerOptions trainer_options;
  trainer_options.zero_stage = std::stoi(argv[4]);
  auto schedule = ParseScheduleKind(argv[5]);
  if (!schedule.ok()) AbortJob(schedule.status());
  trainer_options.schedule = *schedule;
  trainer_options.micro_batches = std::stoi(argv[6]);
  trainer_options.activation_checkpointing = std::string(argv[7]) == "1";
  auto trainer = PipelineTrainer::Create(ref->model_dir(), *stages, trainer_options, &mesh->pipeline(),
                                         shape.dp > 1 ? &mesh->data_parallel() : nullptr);
  if (!trainer.ok()) AbortJob(trainer.status());

  const std::vector<std::string> failures = ref->RunAndCheck(**trainer);
  const TrainMemory m = (*trainer)->memory();
  std::fprintf(stderr,
               "rank %d (stage %d, replica %d): params %zu B, grads %zu B, optimizer %zu B, peak gathered %zu B, "
               "peak activations %zu B\n",
               (*world)->rank(), mesh->coord().pp_stage, mesh->coord().dp_index, m.parameter_bytes, m.gradient_bytes,
               m.optimizer_bytes, m.peak_gathered_bytes, m.peak_activation_bytes);
  // Model states fall as 1/dp under ZeRO-3 (up to each unit's padding to a
  // multiple of dp); replicated and single-replica layouts keep everything.
  std::vector<std::string> memory_failures;
  const bool sharded = shape.dp > 1 && trainer_options.zero_stage == 3;
  const size_t units = (*trainer)->stage().unit_fields().size();
  const size_t want = sharded ? m.stage_parameter_bytes / shape.dp : m.stage_parameter_bytes;
  const size_t slack = sharded ? units * sizeof(float) : 0;
  if (m.parameter_bytes < want || m.parameter_bytes > want + slack || m.gradient_bytes != m.parameter_bytes ||
      m.optimizer_bytes != 2 * m.parameter_bytes) {
    memory_failures.push_back("model-state bytes " + std::to_string(m.parameter_bytes) + " / " +
                              std::to_string(m.gradient_bytes) + " / " + std::to_string(m.optimizer_bytes) +
                              " for a stage of " + std::to_string(m.stage_parameter_bytes) + " bytes");
  }
  std::vector<std::string> all = failures;
  all.insert(all.end(), memory_failures.begin(), memory_failures.end());
  for (const std::string& f : all) std::printf("rank %d: %s\n", (*world)->rank(), f.c_str());
  std::vector<int> failed = {static_cast<int>(all.size())};
  Check((*world)->AllReduce(std::span<int>(failed)));
  if ((*world)->rank() == 0) std::printf("TRAIN_LAYOUT %s\n", failed[0] == 0 ? "ok" : "FAILED");
  std::fflush(stdout);
  return failed[0] == 0 ? 0 : 1;
}

}  // namespace
}  // namespace baton

int main(int argc, char** argv) { return baton::Run(argc, argv); }
