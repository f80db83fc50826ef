#!/usr/bin/env bash
# Installs every build and test dependency of Baton from Debian 12's packages.
# Idempotent: packages already present are skipped, so a second run is quick.
# The CUDA toolkit is not installed here; CMake finds it at /usr/local/cuda.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  libopenblas-openmp-dev     # CPU matmul, sharing OpenMP's thread pool
  libopenmpi-dev openmpi-bin # CPU transport, launching ranks
  nlohmann-json3-dev         # config.json, tokenizer.json, safetensors headers
  libcli11-dev               # command line
  libgtest-dev               # unit tests
  libpcre2-dev               # Unicode regex for tokenizer pre-tokenizers
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc  # serving API
  grpc-proto                 # grpc/health/v1/health.proto (stubs of the health service)
  prometheus-cpp-dev         # /metrics
  python3-grpcio python3-protobuf  # Python SDK and the serving tests
  python3-venv python3-pip python3-setuptools python3-wheel  # `pip install sdk/python` (and its test)
  python3                    # test helpers (tokenizer/fixture checks)
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
