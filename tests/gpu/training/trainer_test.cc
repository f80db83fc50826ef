// The whole trainer on the GPU (CudaTrainingOps) against the fixtures'
// training reference (tests/unit/training/train_reference.h), the same
// check every CPU layout passes:
//  - float32 compute (TF32 off): within 20x the CPU's tolerances (cuBLAS
//    and the attention GEMMs sum in another order than OpenBLAS);
//  - bf16 compute with float32 master weights: the loss before each step
//    and after the last within bf16's reach of the float32 reference.
// Skips without a GPU.
#include <gtest/gtest.h>

#include <cmath>

#include "runtime/backend/cuda/make_cuda_backend.h"
#include "runtime/backend/cuda/training/make_cuda_training_ops.h"
#include "tests/unit/training/train_reference.h"

namespace baton {
namespace {

using testing::TrainReference;

struct GpuTrainer {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<TrainingOps> ops;
  std::unique_ptr<PipelineTrainer> trainer;  // last: destroyed first
};

GpuTrainer MakeGpuTrainer(const std::string& model_dir, DType dtype, const TrainerOptions& options) {
  GpuTrainer g;
  auto backend = MakeCudaBackend(dtype, 0);
  EXPECT_TRUE(backend.ok()) << backend.status().ToString();
  if (!backend.ok()) return g;
  g.backend = std::move(backend).value();
  auto ops = MakeCudaTrainingOps(*g.backend);
  EXPECT_TRUE(ops.ok()) << ops.status().ToString();
  if (!ops.ok()) return g;
  g.ops = std::move(ops).value();
  auto config = LoadModelConfig(model_dir);
  EXPECT_TRUE(config.ok());
  TrainerDevice device;
  device.ops = g.ops.get();
  auto trainer =
      PipelineTrainer::Create(model_dir, {StageRange{0, config->num_layers}}, options, nullptr, nullptr, device);
  EXPECT_TRUE(trainer.ok()) << trainer.status().ToString();
  if (trainer.ok()) g.trainer = std::move(trainer).value();
  return g;
}

std::string Join(const std::vector<std::string>& lines) {
  std::string s;
  for (const auto& l : lines) s += l + "\n";
  return s;
}

class GpuTrainTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (CudaDeviceCount() == 0) GTEST_SKIP() << "no CUDA GPU visible";
    auto ref = TrainReference::Load(GetParam());
    ASSERT_TRUE(ref.ok()) << ref.status().ToString();
    ref_ = std::make_unique<TrainReference>(std::move(ref).value());
  }
  std::unique_ptr<TrainReference> ref_;
};

TEST_P(GpuTrainTest, Float32MatchesTheReference) {
  GpuTrainer g = MakeGpuTrainer(ref_->model_dir(), DType::kF32, {});
  ASSERT_NE(g.trainer, nullptr);
  const auto failures = ref_->RunAndCheck(*g.trainer, 20.0);
  EXPECT_TRUE(failures.empty()) << Join(failures);
}

TEST_P(GpuTrainTest, Float32WithCheckpointingAndMicroBatchesMatchesTheReference) {
  TrainerOptions options;
  options.activation_checkpointing = true;
  options.micro_batches = 2;
  GpuTrainer g = MakeGpuTrainer(ref_->model_dir(), DType::kF32, options);
  ASSERT_NE(g.trainer, nullptr);
  const auto failures = ref_->RunAndCheck(*g.trainer, 20.0);
  EXPECT_TRUE(failures.empty()) << Join(failures);
}

// AdamW on the host (--offload-optimizer): the gradients come down, the
// master weights go back up, the moments never touch the GPU.
TEST_P(GpuTrainTest, Float32WithOffloadedOptimizerMatchesTheReference) {
  TrainerOptions options;
  options.offload_optimizer = true;
  GpuTrainer g = MakeGpuTrainer(ref_->model_dir(), DType::kF32, options);
  ASSERT_NE(g.trainer, nullptr);
  const auto failures = ref_->RunAndCheck(*g.trainer, 20.0);
  EXPECT_TRUE(failures.empty()) << Join(failures);
  EXPECT_TRUE(g.trainer->memory().optimizer_on_host);
  ASSERT_FALSE(g.trainer->optimizer().exp_avg().empty());
  EXPECT_EQ(g.trainer->optimizer().exp_avg()[0].device(), Device::kCpu);
  EXPECT_EQ(g.trainer->stage().units()[0]->shard().device(), Device::kCuda);
}

// bf16 activations and weight copies, float32 master weights, gradients and
// moments: each loss within 1 % of the float32 reference, and the three
// steps lower it as the reference's do.
TEST_P(GpuTrainTest, Bf16FollowsTheReferenceLosses) {
  GpuTrainer g = MakeGpuTrainer(ref_->model_dir(), DType::kBF16, {});
  ASSERT_NE(g.trainer, nullptr);
  const std::vector<double> want = ref_->losses();
  std::vector<double> got;
  for (int step = 0; step < 3; ++step) {
    auto loss = g.trainer->ComputeGradients(ref_->batch());
    ASSERT_TRUE(loss.ok()) << loss.status().ToString();
    got.push_back(loss->mean());
    auto norm = g.trainer->ApplyUpdate(1e-3, 0.0);
    ASSERT_TRUE(norm.ok()) << norm.status().ToString();
    EXPECT_TRUE(std::isfinite(*norm));
  }
  auto last = g.trainer->Evaluate(ref_->batch());
  ASSERT_TRUE(last.ok()) << last.status().ToString();
  got.push_back(last->mean());
  ASSERT_EQ(want.size(), got.size());
  for (size_t i = 0; i < want.size(); ++i) {
    std::printf("  [bf16 %s] loss %zu: %.6f (reference %.6f)\n", GetParam().c_str(), i, got[i], want[i]);
    EXPECT_NEAR(got[i], want[i], 1e-2 * want[i]) << "loss " << i;
  }
  EXPECT_LT(got.back(), got.front() - 0.5 * (want.front() - want.back()));
}

INSTANTIATE_TEST_SUITE_P(Models, GpuTrainTest, ::testing::Values("gpt2-mini", "llama-mini"), [](const auto& info) {
  std::string name = info.param;
  for (char& c : name) c = c == '-' ? '_' : c;
  return name;
});

}  // namespace
}  // namespace baton
