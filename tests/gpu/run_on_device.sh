#!/usr/bin/env bash
# Builds and runs the GPU op tests and op timings on the device machine
# (see ../shared/GPU.md); results go to $OUT (gpu_ops.log, gpu_ops.xml,
# summary.txt, timings.txt, gpu_op_timings.json). From the repo root:
#   tests/gpu/run_on_device.sh [gtest args]
# When the machine lacks Baton's build dependencies (GTest, OpenBLAS, ...),
# it runs binaries built here instead, carried as build-gpucarry/carry.tar.xz
# (bin/ and, in lib/, the shared libraries they need that the machine lacks).
set -uo pipefail
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
export PATH=/opt/torch/.venv/bin:$PATH
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
BIN=""
if cmake -S . -B build/gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DBATON_GRPC=OFF -DBATON_WERROR=ON \
  >"$OUT/configure.log" 2>&1; then
  if cmake --build build/gpu --target test_gpu_ops gpu_op_timings -j16 >"$OUT/build.log" 2>&1; then
    BIN=build/gpu/tests/gpu
  else
    grep -B2 -A10 -m5 error "$OUT/build.log"
    exit 1
  fi
elif [ -f build-gpucarry/carry.tar.xz ] && tar xJf build-gpucarry/carry.tar.xz -C build-gpucarry; then
  echo "configure failed here ($(grep -m1 -i 'could not\|not found' "$OUT/configure.log")); using carried binaries"
  BIN=build-gpucarry/bin
  export LD_LIBRARY_PATH=$PWD/build-gpucarry/lib:/usr/local/cuda/lib64:/usr/local/cuda/lib:${LD_LIBRARY_PATH:-}
else
  tail -30 "$OUT/configure.log"
  exit 1
fi
status=0
"$BIN/test_gpu_ops" --gtest_output=xml:"$OUT/gpu_ops.xml" "$@" >"$OUT/gpu_ops.log" 2>&1 || status=$?
grep -E "^  \[(F32|BF16|F16) |Failure|Expected|Which is|actual|fatal" "$OUT/gpu_ops.log" >"$OUT/summary.txt"
grep -E "Failure|fatal" -A6 "$OUT/gpu_ops.log" | head -60
timeout 300 "$BIN/gpu_op_timings" "$OUT/gpu_op_timings.json" 2>&1 | tee "$OUT/timings.txt"
grep -E "^\[ *(PASSED|FAILED) *\]|tests? ran|SKIPPED \]" "$OUT/gpu_ops.log" | tail -25
echo "test_gpu_ops exit status: $status"
exit $status
