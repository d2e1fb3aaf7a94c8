#!/usr/bin/env bash
# The whole test suite from a fresh machine: installs the system dependencies (Debian
# packages), builds the release preset with warnings as errors, and runs every test
# (CTest labels `unit` and `integration`). Usage: scripts/test.sh [PRESET]
set -euo pipefail
cd "$(dirname "$0")/.."
preset=${1:-release}
scripts/install-deps.sh
scripts/build.sh "$preset"
ctest --preset "$preset" -j "$(nproc)"
