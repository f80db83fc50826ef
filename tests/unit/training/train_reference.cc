#include "tests/unit/training/train_reference.h"

#include <cmath>
#include <map>

#include "runtime/training/hf_layout.h"
#include "tests/test_data.h"

namespace baton::testing {
namespace {

double L2(const Tensor& t) {
  double s = 0;
  for (int64_t i = 0; i < t.numel(); ++i) s += double{t.data<float>()[i]} * t.data<float>()[i];
  return std::sqrt(s);
}

// ||a - b|| / ||b||
double RelativeL2(const Tensor& a, const Tensor& b) {
  double diff = 0, ref = 0;
  for (int64_t i = 0; i < b.numel(); ++i) {
    const double d = double{a.data<float>()[i]} - b.data<float>()[i];
    diff += d * d;
    ref += double{b.data<float>()[i]} * b.data<float>()[i];
  }
  return std::sqrt(diff / ref);
}

void ExpectNear(double got, double want, double relative, const std::string& what, std::vector<std::string>& out) {
  if (!(std::fabs(got - want) <= relative * std::fabs(want))) {
    out.push_back(what + ": got " + std::to_string(got) + ", want " + std::to_string(want));
  }
}

// GPT-2's fused c_attn bias holds the key bias, whose true gradient is 0:
// adding b to every key adds q.b to a whole row of scores, which softmax
// ignores. Both runs see only rounding noise there (~1e-9), and AdamW
// normalises noise into steps of up to lr, so after 3 steps the k third
// differs by up to 3 lr in each run, independently. Only that third is held
// to the AdamW bound; q and v are held to 1e-4.
bool IsKeyBiasOf(const ModelConfig& c, const std::string& name) {
  return c.model_type == "gpt2" && name.size() > 16 && name.compare(name.size() - 16, 16, "attn.c_attn.bias") == 0;
}

void CheckKeyBias(const ModelConfig& c, const Tensor& ours, const Tensor& want, const std::string& prefix, double slack,
                  std::vector<std::string>& out) {
  const int64_t q = c.q_size(), kv = c.kv_size();
  Tensor ours_qkv = ours.Reshape({ours.numel(), 1}), want_qkv = want.Reshape({want.numel(), 1});
  for (auto [begin, end] : {std::pair<int64_t, int64_t>{0, q}, {q + kv, q + 2 * kv}}) {
    if (RelativeL2(ours_qkv.Rows(begin, end), want_qkv.Rows(begin, end)) >= slack * 1e-4)
      out.push_back(prefix + " q/v bias");
  }
  for (int64_t i = q; i < q + kv; ++i) {
    const float a = ours.data<float>()[i], b = want.data<float>()[i];
    const bool ok = prefix == "grad0" ? std::fabs(a) < slack * 1e-6 : std::fabs(a - b) < 2 * 3 * 1e-3 * 1.01;
    if (!ok) out.push_back(prefix + " key bias " + std::to_string(i));
  }
}

}  // namespace

StatusOr<TrainReference> TrainReference::Load(const std::string& model) {
  TrainReference r;
  r.model_dir_ = TestDataPath(model);
  r.reference_ = LoadTestJson(model + "/reference.json")["train"];
  BATON_ASSIGN_OR_RETURN(r.tensors_, Checkpoint::OpenFile(TestDataPath(model + "/reference.safetensors")));
  const auto ids = r.reference_["batch_ids"].get<std::vector<std::vector<int32_t>>>();
  r.batch_.num_seqs = static_cast<int>(ids.size());
  r.batch_.seq_len = static_cast<int>(ids[0].size());
  for (const auto& seq : ids) r.batch_.input_ids.insert(r.batch_.input_ids.end(), seq.begin(), seq.end());
  r.batch_.labels = r.batch_.input_ids;
  return r;
}

// Every HF tensor of `values` against the reference norms, and the full
// tensors stored as "<prefix>.<name>" where the reference has them.
void TrainReference::CheckTensors(const ModelConfig& config, const StageWeights& values, const std::string& prefix,
                                  double slack, std::vector<std::string>& out) const {
  const nlohmann::json& norms = reference_[prefix + "_l2_norm_per_param"];
  std::map<std::string, Tensor> ours;
  for (auto& [name, t] : ToHfTensors(config, values)) ours[name] = t;
  if (ours.size() != norms.size()) out.push_back(prefix + ": tensor count differs");
  int full = 0;
  for (const auto& [name, norm] : norms.items()) {
    if (ours.count(name) == 0) {
      out.push_back(prefix + ": missing " + name);
      continue;
    }
    const Tensor& t = ours[name];
    const bool noisy = prefix == "param3" && IsKeyBiasOf(config, name);
    // See IsKeyBiasOf: the noise-driven k third alone moves this norm by
    // ~3e-3 relative (observed); the layer-0 tensor is checked by parts.
    ExpectNear(L2(t), norm.get<double>(), slack * (noisy ? 1e-2 : 1e-4), prefix + " norm of " + name, out);
    const std::string stored = prefix + "." + name;
    if (!tensors_.Has(stored)) continue;
    auto want = tensors_.GetF32(stored, t.shape());
    if (!want.ok()) {
      out.push_back(want.status().ToString());
      continue;
    }
    if (IsKeyBiasOf(config, name)) {
      CheckKeyBias(config, t, *want, prefix, slack, out);
    } else if (RelativeL2(t, *want) >= slack * 1e-4) {
      out.push_back(stored + ": relative L2 error " + std::to_string(RelativeL2(t, *want)));
    }
    ++full;
  }
  if (full < 10) out.push_back("too few full " + prefix + " tensors compared");
}

std::vector<double> TrainReference::losses() const {
  return reference_["losses_before_each_step_and_after_last"].get<std::vector<double>>();
}

std::vector<std::string> TrainReference::RunAndCheck(PipelineTrainer& trainer, double slack) const {
  std::vector<std::string> out;
  const auto losses = reference_["losses_before_each_step_and_after_last"].get<std::vector<double>>();
  const auto grad_norms = reference_["global_grad_l2_norm_each_step"].get<std::vector<double>>();
  const double lr = 1e-3;  // the fixture's AdamW: lr 1e-3, (0.9, 0.999), 1e-8, wd 0.01
  for (int step = 0; step < 3; ++step) {
    auto loss = trainer.ComputeGradients(batch_);
    if (!loss.ok()) return {loss.status().ToString()};
    ExpectNear(loss->mean(), losses[step], slack * (step == 0 ? 1e-5 : 1e-4),
               "loss before step " + std::to_string(step), out);
    if (step == 0) {
      auto grads = trainer.GatherModel(true);
      if (!grads.ok()) return {grads.status().ToString()};
      if (grads->has_value()) CheckTensors(trainer.config(), **grads, "grad0", slack, out);
    }
    auto norm = trainer.ApplyUpdate(lr, 0.0);
    if (!norm.ok()) return {norm.status().ToString()};
    ExpectNear(*norm, grad_norms[step], slack * 1e-4, "grad norm of step " + std::to_string(step), out);
  }
  auto last = trainer.Evaluate(batch_);
  if (!last.ok()) return {last.status().ToString()};
  ExpectNear(last->mean(), losses[3], slack * 1e-4, "loss after 3 steps", out);
  auto params = trainer.GatherModel(false);
  if (!params.ok()) return {params.status().ToString()};
  if (params->has_value()) CheckTensors(trainer.config(), **params, "param3", slack, out);
  return out;
}

}  // namespace baton::testing
