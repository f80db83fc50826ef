#!/usr/bin/env bash
# Packs the GPU test and benchmark binaries, built here, with the shared
# libraries the device machine lacks (OpenBLAS and its Fortran runtime,
# libgomp, PCRE2) into build-gpucarry/carry.tar.xz (ignored by git), for
# tests/gpu/run_on_device.sh and bench/gpu/run_h100.sh to use where Baton's
# build dependencies are missing. Binaries: test_gpu_ops, gpu_op_timings,
# test_gpu_model, test_gpu_training, bench_gpu_decode, bench_gpu_attention
# and `baton` (with NCCL when the build has it, for multi-GPU runs).
# Usage, from the repo root: tests/gpu/make_carry.sh [build_dir]
set -euo pipefail
BUILD=${1:-build/h-cuda}
BINS="tests/gpu/test_gpu_ops tests/gpu/gpu_op_timings tests/gpu/test_gpu_model tests/gpu/test_gpu_training
  bench/bench_gpu_decode bench/bench_gpu_attention launch/baton"
cmake --build "$BUILD" --target test_gpu_ops gpu_op_timings test_gpu_model test_gpu_training bench_gpu_decode \
  bench_gpu_attention baton -j2
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/bin" "$STAGE/lib"
for b in $BINS; do cp "$BUILD/$b" "$STAGE/bin/"; done
strip "$STAGE"/bin/*
for lib in libopenblas.so.0 libgfortran.so.5 libquadmath.so.0 libgomp.so.1 libpcre2-8.so.0; do
  path=$(for b in "$STAGE"/bin/*; do ldd "$b"; done | awk -v l="$lib" '$1 == l && !seen {print $3; seen = 1}')
  if [ -n "$path" ]; then cp -L "$path" "$STAGE/lib/"; fi
done
mkdir -p build-gpucarry
tar cf - -C "$STAGE" bin lib | xz -T2 -6 >build-gpucarry/carry.tar.xz
ls -la build-gpucarry/carry.tar.xz
