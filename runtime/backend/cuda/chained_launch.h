// The process-wide switch for chained (programmatic dependent) kernel
// launches, see chained_launch.cuh. Host-only, so that .cc files can set it.
#pragma once

namespace baton::cuda {

// Set by CudaBackend::Create: on for sm_90 and later unless
// BATON_CHAINED_LAUNCH=off (for before/after measurements).
void SetChainedLaunch(bool on);
bool ChainedLaunch();

}  // namespace baton::cuda
