#!/usr/bin/env bash
# Packs what bench/gpu/run_serving_h100.sh needs on the GPU machine, built
# here because the device image lacks Baton's build dependencies and gRPC:
# `baton-server`, `baton-client` and `baton`, stripped, with every shared
# library they link outside the C/C++ runtime, CUDA and Open MPI (which the
# machine has): gRPC 1.51, protobuf, absl, re2, c-ares, prometheus-cpp,
# civetweb, OpenSSL, OpenBLAS and its Fortran runtime, libgomp, PCRE2. These
# are the files of Debian's packages (libgrpc++1.51, libgrpc29,
# libabsl20220623, ...), copied from where ldd finds them rather than
# downloaded again. Checks that with LD_LIBRARY_PATH at the packed lib/ every
# other library resolves from there, then writes build-gpucarry/serve.tar.xz
# (ignored by git).
# Usage, from the repo root: tests/gpu/make_carry_serve.sh [build_dir]
set -euo pipefail
BUILD=${1:-build/h-gpu}
cmake --build "$BUILD" --target baton-server baton-client baton -j2
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/bin" "$STAGE/lib"
cp "$BUILD/launch/baton-server" "$BUILD/launch/client/baton-client" "$BUILD/launch/baton" "$STAGE/bin/"
strip "$STAGE"/bin/*
# The machine's own: glibc, libstdc++/libgcc_s (newer there), CUDA, NCCL and
# the Open MPI stack with what it pulls in (mixing two MPIs would break it).
system_lib() {
  case $1 in
    libc.so* | libm.so* | libstdc++* | libgcc_s* | ld-linux* | libdl.so* | libpthread* | librt.so* | libcuda* | \
      libcublas* | libcudart* | libnccl* | libmpi* | libopen-* | libhwloc* | libevent* | libz.so* | libudev* | \
      libnvidia* | libpmix* | libfabric* | libucp* | libucs* | libuct* | libibverbs* | librdmacm* | libnl-* | \
      linux-vdso*) return 0 ;;
  esac
  return 1
}
for b in "$STAGE"/bin/*; do ldd "$b"; done | awk '$3 ~ /^\// {print $1, $3}' | sort -u | while read -r name path; do
  system_lib "$name" || cp -L "$path" "$STAGE/lib/"
done
missing=0
for b in "$STAGE"/bin/*; do
  while read -r name path; do
    if ! system_lib "$name" && [[ $path != "$STAGE/lib/"* ]]; then
      echo "not packed: $name ($path) for $(basename "$b")"
      missing=1
    fi
  done < <(LD_LIBRARY_PATH=$STAGE/lib ldd "$b" | awk '$2 == "=>" {print $1, $3}')
done
[ $missing = 0 ] || exit 1
ls "$STAGE/lib" | tr '\n' ' '
echo
mkdir -p build-gpucarry
tar cf - -C "$STAGE" bin lib | xz -T2 -6 >build-gpucarry/serve.tar.xz
ls -la build-gpucarry/serve.tar.xz
