#!/usr/bin/env bash
# Packs test_gpu_ops and gpu_op_timings, built here, with the shared
# libraries the device machine lacks (OpenBLAS and its Fortran runtime,
# libgomp) into build-gpucarry/carry.tar.xz (ignored by git; about 6 MB), for
# run_on_device.sh to use where Baton's build dependencies are missing.
# Usage, from the repo root: tests/gpu/make_carry.sh [build_dir]
set -euo pipefail
BUILD=${1:-build/h-cuda}
cmake --build "$BUILD" --target test_gpu_ops gpu_op_timings -j2
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/bin" "$STAGE/lib"
cp "$BUILD/tests/gpu/test_gpu_ops" "$BUILD/tests/gpu/gpu_op_timings" "$STAGE/bin/"
strip "$STAGE"/bin/*
for lib in libopenblas.so.0 libgfortran.so.5 libquadmath.so.0 libgomp.so.1; do
  cp -L "$(ldd "$STAGE/bin/test_gpu_ops" | awk -v l="$lib" '$1 == l {print $3}')" "$STAGE/lib/"
done
mkdir -p build-gpucarry
tar cf - -C "$STAGE" bin lib | xz -T2 -6 >build-gpucarry/carry.tar.xz
ls -la build-gpucarry/carry.tar.xz
