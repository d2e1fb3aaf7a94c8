#!/usr/bin/env bash
# Installs every system dependency of the project from Debian's packages.
# Idempotent: packages already present are left alone; safe to run on every build.
set -euo pipefail

# Modes: (none) everything the build and the whole test suite need; --build what compiling
# pqa-scorer needs (docker/Dockerfile's build stage); --runtime the shared libraries it runs
# with (the image's final stage).
mode=${1:-all}
build_packages=(
  build-essential cmake ninja-build pkg-config git
  librdkafka-dev librocksdb-dev
  libboost-dev libyaml-cpp-dev libprotobuf-dev protobuf-compiler
  libsimdjson-dev libcli11-dev catch2 libbenchmark-dev prometheus-cpp-dev libssl-dev
)
test_packages=(
  clang clang-format libclang-rt-14-dev   # libFuzzer target and formatting check
  prometheus   # the Prometheus server and promtool, for the metrics tests
  python3 curl
  # The test broker: Apache Kafka from Maven Central jars (scripts/kafka.sh), and kcat for
  # the raw-consume baseline of the end-to-end benchmark.
  # openssl makes the test broker's TLS certificates.
  openjdk-17-jre-headless maven kcat openssl
)
# What `readelf -d pqa-scorer` lists as NEEDED, by package. RocksDB is linked statically (its
# Debian -dev ships the archive first), so its compression libraries are needed directly.
runtime_packages=(
  librdkafka1 libyaml-cpp0.7 libprotobuf32 libsimdjson14 libprometheus-cpp-core1.0 libssl3
  libsnappy1v5 liblz4-1 libzstd1 libbz2-1.0 zlib1g libstdc++6
  ca-certificates
)
case "$mode" in
  all) packages=("${build_packages[@]}" "${test_packages[@]}") ;;
  --build) packages=("${build_packages[@]}") ;;
  --runtime) packages=("${runtime_packages[@]}") ;;
  *) echo "usage: install-deps.sh [--build | --runtime]" >&2; exit 2 ;;
esac

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  echo "install-deps: installing ${missing[*]}" >&2
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Go builds deploy/validate (the manifest validator, from the Go module proxy). Debian's Go
# (1.19) is too old for the Kubernetes modules; the machine's Go toolchain is used.
if [ "$mode" = all ] && ! command -v go >/dev/null && [ ! -x /usr/local/go/bin/go ]; then
  echo "install-deps: Go >= 1.26 is required (https://go.dev/dl, or the machine image's /usr/local/go)" >&2
  exit 1
fi
