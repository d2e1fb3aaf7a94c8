#!/usr/bin/env bash
# Installs every system dependency of the project from Debian's packages.
# Idempotent: packages already present are left alone; safe to run on every build.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  clang clang-format libclang-rt-14-dev   # libFuzzer target and formatting check
  librdkafka-dev librocksdb-dev
  libboost-dev libyaml-cpp-dev libprotobuf-dev protobuf-compiler
  libsimdjson-dev libcli11-dev catch2 libbenchmark-dev prometheus-cpp-dev
  prometheus   # the Prometheus server and promtool, for the metrics tests
  python3
  # The test broker: Apache Kafka from Maven Central jars (scripts/kafka.sh), and kcat for
  # the raw-consume baseline of the end-to-end benchmark.
  openjdk-17-jre-headless maven kcat
)

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
