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
  awk -v l="$label" -v f="$floor" -v s="$score" -v r="$replay" \
    'BEGIN { printf "| %s | %d | %d | %d | %.3f | %.3f |\n", l, f, s, r, s / f, r / f }'
}

echo "| stream ($events events) | floor ev/s | score ev/s | replay ev/s | score/floor | replay/floor |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
# Users per account, with accounts x users held at 200,000 so that every run has the same
# amount of state and only the shape of the accounts changes.
for users in 10 100 1000 10000; do
  run "$users users per account, $((200000 / users)) accounts" --users-per-account "$users" \
    --accounts $((200000 / users))
done
# Accounts, with the generator's default 1-10000 users per account: the state grows with them.
for accounts in 1000 10000 100000 1000000; do
  run "$accounts accounts, 1-10000 users (Zipf)" --accounts "$accounts"
done
