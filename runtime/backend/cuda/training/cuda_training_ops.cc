// TrainingOps on the CUDA backend: each op is a kernel or cuBLAS launcher
// of this folder, queued on the backend's stream. Launchers that can fail
// at run time (cuBLAS, bad targets) return a Status; the first one is kept
// and reported by Synchronize, so a training step checks once.
#include <cuda_runtime_api.h>

#include <algorithm>

#include "runtime/backend/cuda/convert.cuh"
#include "runtime/backend/cuda/cuda_backend.h"
#include "runtime/backend/cuda/cuda_check.h"
#include "runtime/backend/cuda/rope.cuh"
#include "runtime/backend/cuda/training/activation_backward.cuh"
#include "runtime/backend/cuda/training/causal_attention_train.cuh"
#include "runtime/backend/cuda/training/embedding_backward.cuh"
#include "runtime/backend/cuda/training/linear_backward.cuh"
#include "runtime/backend/cuda/training/lm_head_loss.cuh"
#include "runtime/backend/cuda/training/make_cuda_training_ops.h"
#include "runtime/backend/cuda/training/norm_backward.cuh"
#include "runtime/backend/cuda/training/optimizer_kernels.cuh"

namespace baton {
namespace {

// The logits chunk of the loss is the largest scratch buffer: 1 GiB of it
// keeps 2048 rows of a 128k vocabulary, where the head's GEMMs run near
// their peak, and bounds it for larger vocabularies.
constexpr size_t kLossScratchBudget = size_t{1} << 30;

class CudaTrainingOps final : public TrainingOps {
 public:
  explicit CudaTrainingOps(CudaBackend& backend) : gpu_(backend) {}

  Backend& backend() override { return gpu_; }

  Tensor ZerosF32(const Shape& shape) override {
    Tensor t = gpu_.Allocate(shape, DType::kF32);
    Zero(t);
    return t;
  }

  void Zero(Tensor& t) override {
    Keep(cuda::CudaStatus(cudaMemsetAsync(t.raw(), 0, t.nbytes(), gpu_.stream()), "cudaMemsetAsync", __FILE__,
                          __LINE__));
  }

  void Copy(const Tensor& src, Tensor& dst) override {
    if (src.numel() != dst.numel()) {
      Keep(Status::Internal("training Copy: " + src.DebugString() + " into " + dst.DebugString()));
      return;
    }
    if (src.dtype() == dst.dtype()) {
      Keep(
          cuda::CudaStatus(cudaMemcpyAsync(dst.raw(), src.raw(), src.nbytes(), cudaMemcpyDeviceToDevice, gpu_.stream()),
                           "cudaMemcpyAsync", __FILE__, __LINE__));
      return;
    }
    cuda::LaunchConvert(src.raw(), src.dtype(), dst.raw(), dst.dtype(), src.numel(), gpu_.stream());
  }

  void LinearBackward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx, Tensor& dw, Tensor* db) override {
    Keep(cuda::RunLinearBackward(gpu_.cublas(), x, w, dy, dx, dw, db, gpu_.stream()));
  }

  void NormBackward(NormOp op, const Tensor& x, const Tensor& weight, float eps, const Tensor& dy, Tensor& dx,
                    Tensor& dweight, Tensor* dbias) override {
    if (op == NormOp::kLayerNorm) {
      cuda::LaunchLayerNormBackward(x, weight, eps, dy, dx, dweight, dbias, gpu_.stream());
    } else {
      cuda::LaunchRmsNormBackward(x, weight, eps, dy, dx, dweight, gpu_.stream());
    }
  }

  void GeluNewBackward(const Tensor& x, const Tensor& dy, Tensor& dx) override {
    cuda::LaunchGeluNewBackward(x, dy, dx, gpu_.stream());
  }

  void SwiGluBackward(const Tensor& gate_up, const Tensor& dout, Tensor& dgate_up) override {
    cuda::LaunchSwiGluBackward(gate_up, dout, dgate_up, gpu_.stream());
  }

  void RopeBackward(Tensor& dqkv, const Tensor& positions, const Tensor& inv_freq, int num_heads, int num_kv_heads,
                    int head_dim) override {
    cuda::LaunchRopeBackward(dqkv, positions, inv_freq, num_heads, num_kv_heads, head_dim, gpu_.stream());
  }

  void CausalAttentionForward(const Tensor& qkv, const std::vector<int>& seq_starts, const AttentionShape& shape,
                              Tensor& out, Tensor& lse) override {
    Tensor& ws = Scratch(attention_ws_, cuda::CausalAttentionWorkspaceBytes(seq_starts, shape, qkv.dtype()));
    Keep(cuda::RunCausalAttentionForward(gpu_.cublas(), qkv, seq_starts, shape, out, lse, ws, gpu_.stream()));
  }

  void CausalAttentionBackward(const Tensor& qkv, const Tensor& out, const Tensor& lse, const Tensor& dout,
                               const std::vector<int>& seq_starts, const AttentionShape& shape, Tensor& dqkv) override {
    Tensor& ws = Scratch(attention_ws_, cuda::CausalAttentionWorkspaceBytes(seq_starts, shape, qkv.dtype()));
    Keep(cuda::RunCausalAttentionBackward(gpu_.cublas(), qkv, out, lse, dout, seq_starts, shape, dqkv, ws,
                                          gpu_.stream()));
  }

  void EmbeddingBackward(const Tensor& ids, const Tensor& dy, Tensor& dtable) override {
    cuda::LaunchEmbeddingBackward(ids, dy, dtable, gpu_.stream());
  }

  StatusOr<LossSum> LmHeadCrossEntropy(const Tensor& x, const Tensor& head, const Tensor& targets, float grad_scale,
                                       Tensor* dx, Tensor* dhead) override {
    BATON_RETURN_IF_ERROR(status_);
    const int64_t vocab = head.dim(0), rows = std::max<int64_t>(x.dim(0), 1);
    const int64_t budget_rows = static_cast<int64_t>(kLossScratchBudget / (static_cast<size_t>(vocab) * 4));
    const int64_t chunk = std::clamp<int64_t>(budget_rows, 1, rows);
    Tensor& ws = Scratch(loss_ws_, cuda::LmHeadLossWorkspaceBytes(chunk, vocab, x.dtype()));
    return cuda::RunLmHeadCrossEntropy(gpu_.cublas(), x, head, targets, grad_scale, dx, dhead, ws, chunk,
                                       gpu_.stream());
  }

  void AdamWUpdate(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq,
                   const AdamWScalars& s, Tensor* compute_copy) override {
    cuda::AdamWStepArgs args;
    args.decay = s.decay;
    args.one_minus_beta1 = s.one_minus_beta1;
    args.beta2 = s.beta2;
    args.one_minus_beta2 = s.one_minus_beta2;
    args.step_size = s.step_size;
    args.bias_correction2_sqrt = s.bias_correction2_sqrt;
    args.eps = s.eps;
    args.grad_scale = s.grad_scale;
    cuda::LaunchAdamWStep(param, grad, exp_avg, exp_avg_sq, args, compute_copy, gpu_.stream());
  }

  StatusOr<double> SumSquares(const std::vector<Tensor>& xs) override {
    if (!sum_.defined()) sum_ = gpu_.Allocate({2}, DType::kF32);  // one double
    Zero(sum_);
    for (const Tensor& x : xs) cuda::LaunchSumSquares(x, static_cast<double*>(sum_.raw()), gpu_.stream());
    double host = 0;
    BATON_CUDA_CHECK(cudaMemcpyAsync(&host, sum_.raw(), sizeof(double), cudaMemcpyDeviceToHost, gpu_.stream()));
    BATON_RETURN_IF_ERROR(Synchronize());
    return host;
  }

  Status Synchronize() override {
    Keep(gpu_.Synchronize());
    return status_;
  }

 private:
  void Keep(const Status& s) {
    if (status_.ok() && !s.ok()) status_ = s;
  }

  // A scratch buffer grown to `bytes` (kept: the next step needs it again).
  Tensor& Scratch(Tensor& buffer, size_t bytes) {
    if (!buffer.defined() || buffer.nbytes() < bytes) {
      buffer = Tensor();
      buffer = gpu_.Allocate({static_cast<int64_t>(std::max<size_t>(bytes, 16))}, DType::kI8);
    }
    return buffer;
  }

  CudaBackend& gpu_;
  Status status_;
  Tensor attention_ws_, loss_ws_, sum_;
};

}  // namespace

StatusOr<std::unique_ptr<TrainingOps>> MakeCudaTrainingOps(Backend& backend) {
  auto* gpu = dynamic_cast<CudaBackend*>(&backend);
  if (gpu == nullptr) {
    return Status::InvalidArgument(std::string("training on the GPU needs a CUDA backend, not '") + backend.name() +
                                   "'");
  }
  return std::unique_ptr<TrainingOps>(new CudaTrainingOps(*gpu));
}

}  // namespace baton
