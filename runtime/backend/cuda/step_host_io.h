// The host inputs and greedy picks of recorded steps, moved by the step's
// own kernels through page-locked memory (CudaBackend::NextStepInputs,
// FetchStepInputs, StepGreedyTokens, StartStepTokens), so that no copy is
// queued between two decode graphs.
//
// Why: each op queued between two graphs held the next one back. On an
// H100, a 1B decode step with the argmax outside the graph, the inputs
// copied in before it and the ids copied out after took 1051 us; with the
// argmax inside, 1037; with no op between graphs, 1026-1028.
//
// How: steps are counted on both sides. The host counts Next calls; the
// fetch kernel, the first op of a step, counts on the device. Inputs go
// through two slots filled in turn, ids through four landings: step h
// reads input slot h % 2 and lands its ids in landing h % 4. The kernels are
// recorded with every slot's and landing's address and pick by the device
// count. The counts agree as long as each Next is followed by exactly one
// executed fetch. An input slot is refilled only after the step that read
// it last has finished (an event behind it), however many steps the host
// queues; a landing must have been read (FinishLanding) before its slot
// comes round again.
#pragma once

#include <cuda_runtime_api.h>

#include <array>
#include <cstdint>
#include <vector>

#include "runtime/core/tensor.h"

namespace baton::cuda {

// Header of an input slot, ahead of its entries (16 bytes: the entries stay
// 16-byte aligned).
struct StepInputsHeader {
  int32_t first;  // entries before it keep their device values
  int32_t count;  // entries [first, count) are copied
  int32_t unused[2];
};

// Where a greedy kernel lands the ids of the step running: landing
// (*steps - 1) % kCount, *steps being the steps fetched so far.
struct StepTokenLandings {
  static constexpr int kCount = 4;
  int32_t* at[kCount] = {};         // device addresses of page-locked memory
  const uint32_t* steps = nullptr;  // wraps modulo 2^32, a multiple of kCount
};

class StepHostIo {
 public:
  explicit StepHostIo(cudaStream_t stream) : stream_(stream) {}
  ~StepHostIo();  // the owner has waited for the stream
  StepHostIo(const StepHostIo&) = delete;
  StepHostIo& operator=(const StepHostIo&) = delete;

  // Host I32 [count] to fill for the next fetch, which copies entries
  // [first, count) and leaves those before `first` as they are on the
  // device; that step may land up to token_rows ids. Growing the slots
  // moves them (true in `moved`): kernels recorded before then use freed
  // memory and must be recorded again.
  Tensor Next(int64_t count, int64_t first, int64_t token_rows, bool& moved);
  // Queues the fetch into device I32 entries (recordable).
  void Fetch(Tensor& device);
  // For the greedy kernel of a step (recordable).
  StepTokenLandings Landings() const;
  // After the ops of the step last given inputs are queued: the landing
  // its ids reach, held until FinishLanding.
  int TakeLanding(int64_t rows);
  // Waits for the step that landed in `landing`, then reads its ids.
  void FinishLanding(int landing, std::vector<int32_t>& tokens);

 private:
  struct Slot {
    StepInputsHeader* host = nullptr;  // page-locked: header, then entries
    const StepInputsHeader* device = nullptr;
    cudaEvent_t read = nullptr;  // recorded behind the step that was given it last
  };
  struct Landing {
    int32_t* host = nullptr;  // page-locked
    int32_t* device = nullptr;
    cudaEvent_t landed = nullptr;
    int64_t rows = 0;
    bool held = false;
  };
  void Grow(int64_t count, int64_t token_rows);

  cudaStream_t stream_;
  std::array<Slot, 2> slots_;
  std::array<Landing, StepTokenLandings::kCount> landings_;
  int64_t capacity_ = 0;        // entries a slot holds
  int64_t token_capacity_ = 0;  // ids a landing holds
  uint32_t* steps_ = nullptr;   // device: fetches executed
  uint64_t nexts_ = 0;          // Next calls
};

}  // namespace baton::cuda
