#!/usr/bin/env bash
# Throughput as the account shape changes, each point measured side by side with its own
# decode floor in one process (bench/throughput.cpp). Usage: bench/run_scaling.sh [EVENTS]
# Needs a release build (scripts/build.sh release). Prints a markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-2000000}
bin=build/release/bench
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

run() {  # run LABEL GENERATOR-FLAGS...
  local label=$1
  shift
  "$bin/pqa-gen" --events "$events" "$@" >"$work/in.jsonl"
  "$bin/pqa-bench-throughput" --config config/scorer.yaml --input "$work/in.jsonl" \
    --repeat 2 --stages floor,score,replay 2>/dev/null >"$work/out.txt"
  local floor score replay
  floor=$(awk '$1=="floor"{print $2}' "$work/out.txt")
  score=$(awk '$1=="score"{print $2}' "$work/out.txt")
  replay=$(awk '$1=="replay"{print $2}' "$work/out.txt")
  printf '| %s | %s | %s | %s | %.3f | %.3f |\n' "$label" "$floor" "$score" "$replay" \
    "$(echo "$score / $floor" | bc -l)" "$(echo "$replay / $floor" | bc -l)"
}

echo "| stream ($events events) | floor ev/s | score ev/s | replay ev/s | score/floor | replay/floor |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
for users in 10 100 1000 10000; do
  run "$users users per account, 2000 accounts" --users-per-account "$users" --accounts 2000
done
for accounts in 1000 10000 100000 1000000; do
  run "$accounts accounts, 1-10000 users (Zipf)" --accounts "$accounts"
done
