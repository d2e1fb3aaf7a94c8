#!/usr/bin/env bash
# Throughput as the account shape changes, each point measured side by side with its own
# decode floor in one process (bench/throughput.cpp). Usage: bench/run_scaling.sh [EVENTS]
# Needs a release build (scripts/build.sh release). Prints markdown tables.
#
# The account rows are measured twice: "cold", where the run starts from empty state, so that
# with many accounts a large share of the events creates accounts and users; and "warm", where
# the same population first sends EVENTS events (not timed) and the next EVENTS events of it,
# 60 days later, are measured against the state that exists: a service that has been running.
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-2000000}
bin=build/release/bench
# As the container image runs the service (docker/Dockerfile); an empty value turns it off.
export GLIBC_TUNABLES=${GLIBC_TUNABLES-glibc.malloc.hugetlb=1}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

run() {  # run LABEL cold|warm GENERATOR-FLAGS...
  local label=$1 mode=$2
  shift 2
  local warm=()
  if [[ $mode == warm ]]; then
    "$bin/pqa-gen" --events "$events" "$@" >"$work/warm.jsonl"
    "$bin/pqa-gen" --events "$events" --start 2026-03-06T00:00:00Z "$@" >"$work/in.jsonl"
    warm=(--warmup "$work/warm.jsonl")
  else
    "$bin/pqa-gen" --events "$events" "$@" >"$work/in.jsonl"
  fi
  "$bin/pqa-bench-throughput" --config config/scorer.yaml --input "$work/in.jsonl" \
    --repeat 2 --stages floor,score,replay,replay-sync "${warm[@]}" 2>/dev/null >"$work/out.txt"
  local floor score replay sync
  floor=$(awk '$1=="floor"{print $2}' "$work/out.txt")
  score=$(awk '$1=="score"{print $2}' "$work/out.txt")
  replay=$(awk '$1=="replay"{print $2}' "$work/out.txt")
  sync=$(awk '$1=="replay-sync"{print $2}' "$work/out.txt")
  awk -v l="$label" -v f="$floor" -v s="$score" -v r="$replay" -v y="$sync" \
    'BEGIN { printf "| %s | %d | %d | %d | %d | %.3f | %.3f |\n", l, f, s, r, y, s / f, r / f }'
}

echo "| stream ($events events) | floor ev/s | score ev/s | replay ev/s | replay, sync writes ev/s | score/floor | replay/floor |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
# Users per account, with accounts x users held at 200,000 so that every run has the same
# amount of state and only the shape of the accounts changes.
for users in 10 100 1000 10000; do
  run "$users users per account, $((200000 / users)) accounts" cold \
    --users-per-account "$users" --accounts $((200000 / users))
done
# Accounts, with the generator's default 1-10000 users per account: the state grows with them.
for mode in cold warm; do
  for accounts in 1000 10000 100000 1000000; do
    run "$accounts accounts, 1-10000 users (Zipf), $mode" "$mode" --accounts "$accounts"
  done
done
