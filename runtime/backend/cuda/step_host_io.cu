#include <algorithm>
#include <limits>
#include <string>

#include "runtime/backend/cuda/common.cuh"
#include "runtime/backend/cuda/step_host_io.h"

namespace baton::cuda {
namespace {

constexpr int kThreads = 512;
constexpr int64_t kMinTokenRows = 64;  // a decode graph's largest batch: no move as batches grow

// __ldcv: the host rewrites a slot between fetches, so no copy of it may be
// served from a cache.
__global__ void __launch_bounds__(kThreads)
    FetchStepInputsKernel(const StepInputsHeader* slot0, const StepInputsHeader* slot1, uint32_t* steps, int32_t* out,
                          int64_t capacity) {
  __shared__ int32_t s_first, s_end;
  __shared__ const int32_t* s_entries;
  if (threadIdx.x == 0) {
    const StepInputsHeader* slot = (*steps & 1) == 0 ? slot0 : slot1;
    const int32_t first = __ldcv(&slot->first), count = __ldcv(&slot->count);
    s_first = max(first, 0);
    s_end = max(s_first, static_cast<int32_t>(min(static_cast<int64_t>(count), capacity)));
    s_entries = reinterpret_cast<const int32_t*>(slot + 1);
  }
  __syncthreads();
  const int32_t first = s_first, end = s_end;
  const int32_t* entries = s_entries;
  // Four entries a load where both sides are 16-byte aligned (out is a
  // device allocation; first is usually a multiple of 4), then the rest.
  int32_t i = first;
  if (first % 4 == 0 && reinterpret_cast<uintptr_t>(out) % 16 == 0) {
    const int32_t quads = (end - first) / 4;
    for (int32_t q = threadIdx.x; q < quads; q += kThreads) {
      const int4 v = __ldcv(reinterpret_cast<const int4*>(entries + first) + q);
      *(reinterpret_cast<int4*>(out + first) + q) = v;
    }
    i = first + quads * 4;
  }
  for (int32_t j = i + threadIdx.x; j < end; j += kThreads) out[j] = __ldcv(entries + j);
  __syncthreads();
  if (threadIdx.x == 0) *steps += 1;
}

void Check(cudaError_t err, const char* call) {
  if (err != cudaSuccess) DieCuda("StepInputs", (std::string(call) + ": " + cudaGetErrorString(err)).c_str());
}

#define CHECK_CUDA(call) Check((call), #call)

// Page-locked memory the device reaches: host and device addresses.
template <typename T>
void AllocateMapped(size_t bytes, T*& host, T*& device) {
  void* h = nullptr;
  void* d = nullptr;
  CHECK_CUDA(cudaHostAlloc(&h, bytes, cudaHostAllocMapped));
  CHECK_CUDA(cudaHostGetDevicePointer(&d, h, 0));
  host = static_cast<T*>(h);
  device = static_cast<T*>(d);
}

}  // namespace

StepHostIo::~StepHostIo() {
  for (Slot& s : slots_) {
    if (s.read != nullptr) cudaEventDestroy(s.read);
    if (s.host != nullptr) cudaFreeHost(s.host);
  }
  for (Landing& l : landings_) {
    if (l.landed != nullptr) cudaEventDestroy(l.landed);
    if (l.host != nullptr) cudaFreeHost(l.host);
  }
  if (steps_ != nullptr) cudaFree(steps_);
}

void StepHostIo::Grow(int64_t count, int64_t token_rows) {
  CHECK_CUDA(cudaStreamSynchronize(stream_));  // no queued step may still use the old memory
  // Ids landed but not yet read (a step queued ahead) move along.
  std::array<std::vector<int32_t>, StepTokenLandings::kCount> held;
  for (size_t i = 0; i < landings_.size(); ++i) {
    if (landings_[i].held) held[i].assign(landings_[i].host, landings_[i].host + landings_[i].rows);
  }
  capacity_ = count;
  token_capacity_ = token_rows;
  for (Slot& s : slots_) {
    if (s.host != nullptr) CHECK_CUDA(cudaFreeHost(s.host));
    StepInputsHeader* device = nullptr;
    AllocateMapped(sizeof(StepInputsHeader) + static_cast<size_t>(count) * sizeof(int32_t), s.host, device);
    s.device = device;
    if (s.read == nullptr) CHECK_CUDA(cudaEventCreateWithFlags(&s.read, cudaEventDisableTiming));
    CHECK_CUDA(cudaEventRecord(s.read, stream_));
  }
  for (size_t i = 0; i < landings_.size(); ++i) {
    Landing& l = landings_[i];
    if (l.host != nullptr) CHECK_CUDA(cudaFreeHost(l.host));
    AllocateMapped(static_cast<size_t>(token_rows) * sizeof(int32_t), l.host, l.device);
    std::copy(held[i].begin(), held[i].end(), l.host);
    if (l.landed == nullptr) CHECK_CUDA(cudaEventCreateWithFlags(&l.landed, cudaEventDisableTiming));
  }
  if (steps_ == nullptr) {  // counted on from here on, across moves (held landings keep their numbers)
    CHECK_CUDA(cudaMalloc(&steps_, sizeof(uint32_t)));
    CHECK_CUDA(cudaMemsetAsync(steps_, 0, sizeof(uint32_t), stream_));
    nexts_ = 0;
  }
}

Tensor StepHostIo::Next(int64_t count, int64_t first, int64_t token_rows, bool& moved) {
  if (count < 0 || first < 0 || first > count || token_rows < 0 || count > std::numeric_limits<int32_t>::max()) {
    DieCuda("StepInputs", ("entries [" + std::to_string(first) + ", " + std::to_string(count) + "), " +
                           std::to_string(token_rows) + " token rows")
                              .c_str());
  }
  moved = count > capacity_ || token_rows > token_capacity_;
  // Each move costs re-recorded graphs: room for twice as much.
  if (moved) Grow(std::max(count, 2 * capacity_), std::max({token_rows, 2 * token_capacity_, kMinTokenRows}));
  if (landings_[static_cast<size_t>(nexts_ % StepTokenLandings::kCount)].held) {
    DieCuda("StepInputs", "more steps ahead than landings for their ids: a step's ids were not read");
  }
  // Every op of the step given the other slot is queued by now; this slot's
  // event follows the step before that.
  CHECK_CUDA(cudaEventRecord(slots_[static_cast<size_t>((nexts_ + 1) % 2)].read, stream_));
  Slot& slot = slots_[static_cast<size_t>(nexts_ % 2)];
  CHECK_CUDA(cudaEventSynchronize(slot.read));
  ++nexts_;
  slot.host->first = static_cast<int32_t>(first);
  slot.host->count = static_cast<int32_t>(count);
  return Tensor::View(nullptr, slot.host + 1, {count}, DType::kI32);
}

void StepHostIo::Fetch(Tensor& device) {
  if (device.dtype() != DType::kI32 || device.device() != Device::kCuda) {
    DieCuda("FetchStepInputs", ("entries " + device.DebugString() + " are not device I32").c_str());
  }
  if (steps_ == nullptr) DieCuda("FetchStepInputs", "no inputs were given (NextStepInputs)");
  FetchStepInputsKernel<<<1, kThreads, 0, stream_>>>(slots_[0].device, slots_[1].device, steps_, device.data<int32_t>(),
                                                     device.numel());
  CheckLaunch("FetchStepInputs");
}

StepTokenLandings StepHostIo::Landings() const {
  if (steps_ == nullptr) DieCuda("StepGreedyTokens", "no inputs were given (NextStepInputs)");
  StepTokenLandings out;
  for (int i = 0; i < StepTokenLandings::kCount; ++i) out.at[i] = landings_[static_cast<size_t>(i)].device;
  out.steps = steps_;
  return out;
}

int StepHostIo::TakeLanding(int64_t rows) {
  if (nexts_ == 0) DieCuda("StartStepTokens", "no step was given inputs (NextStepInputs)");
  if (rows > token_capacity_) DieCuda("StartStepTokens", "more ids than the step was given room for");
  const int index = static_cast<int>((nexts_ - 1) % StepTokenLandings::kCount);
  Landing& l = landings_[static_cast<size_t>(index)];
  if (l.held) DieCuda("StartStepTokens", "the step's ids were taken already");
  CHECK_CUDA(cudaEventRecord(l.landed, stream_));
  l.rows = rows;
  l.held = true;
  return index;
}

void StepHostIo::FinishLanding(int landing, std::vector<int32_t>& tokens) {
  if (landing < 0 || landing >= StepTokenLandings::kCount || !landings_[static_cast<size_t>(landing)].held) {
    DieCuda("FinishTokens", "a landing StartStepTokens did not give, or finished twice");
  }
  Landing& l = landings_[static_cast<size_t>(landing)];
  CHECK_CUDA(cudaEventSynchronize(l.landed));
  tokens.assign(l.host, l.host + l.rows);
  l.held = false;
}

}  // namespace baton::cuda
