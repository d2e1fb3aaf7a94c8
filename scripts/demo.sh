#!/usr/bin/env bash
# The scorer's main job on an embedded default, with no external service: installs what it
# needs, builds, and runs `pqa-scorer demo`: the streaming service (`run`'s code) fed with
# realistic generated traffic (libs/synth: the seeds' account archetypes, Zipf activity, a
# few bad events) through librdkafka's in-process Kafka cluster, RocksDB state in a temporary
# directory. Prints signals as they reach the signals topic, then a summary.
# Usage: scripts/demo.sh [EVENTS] [ACCOUNTS] [EVENTS_PER_SECOND]
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-100000}
accounts=${2:-500}
rate=${3:-20000}
scripts/install-deps.sh
scripts/build.sh release >&2
exec build/release/services/scorer/pqa-scorer demo --config config/scorer.yaml \
  --events "$events" --accounts "$accounts" --rate "$rate"
