#!/usr/bin/env bash
# Packs what tests/gpu/run_pipeline_x2.sh needs on the two-GPU machine,
# built here because the device image lacks Baton's build dependencies:
# `baton` and `test_gpu_nccl`, stripped, with the shared libraries the
# machine lacks (OpenBLAS and its Fortran runtime, libgomp, PCRE2, and any
# gRPC/protobuf/absl libraries `baton` links), into build-gpucarry/x2.tar.xz
# (ignored by git). NCCL, CUDA and Open MPI come from the machine itself.
# Usage, from the repo root: tests/gpu/make_carry_x2.sh [build_dir]
set -euo pipefail
BUILD=${1:-build/h-nccl}
cmake --build "$BUILD" --target baton test_gpu_nccl -j2
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/bin" "$STAGE/lib"
cp "$BUILD/launch/baton" "$BUILD/tests/gpu/test_gpu_nccl" "$STAGE/bin/"
strip "$STAGE"/bin/*
# Everything ldd resolves outside the C/C++ runtime, CUDA, NCCL and MPI.
for b in "$STAGE"/bin/*; do ldd "$b"; done | awk '$3 ~ /^\// {print $1, $3}' | sort -u | while read -r name path; do
  case $name in
    libc.so* | libm.so* | libstdc++* | libgcc_s* | ld-linux* | libdl.so* | libpthread* | librt.so* | libcuda* | \
      libcublas* | libcudart* | libnccl* | libmpi* | libopen-* | libhwloc* | libevent* | libz.so* | libudev* | \
      libnvidia* | libpmix* | libfabric* | libucp* | libucs* | libuct* | libibverbs* | librdmacm* | libnl-*) ;;
    *) cp -L "$path" "$STAGE/lib/" ;;
  esac
done
ls "$STAGE/lib"
mkdir -p build-gpucarry
tar cf - -C "$STAGE" bin lib | xz -T2 -6 >build-gpucarry/x2.tar.xz
ls -la build-gpucarry/x2.tar.xz
