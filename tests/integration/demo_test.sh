#!/usr/bin/env bash
# `pqa-scorer demo` (the README's main job): the whole pipeline through librdkafka's mock
# cluster must score every event, dead-letter the generated bad ones and print signals.
# Usage: demo_test.sh PQA_SCORER CONFIG
set -euo pipefail
scorer=$1
config=$2
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$scorer" demo --config "$config" --events 5000 --accounts 50 --rate 0 >"$out"
summary=$(grep -E '^5000 events in' "$out") || { echo "no summary line"; cat "$out"; exit 1; }
scored=$(sed -E 's/.*: ([0-9]+) scored, ([0-9]+) dead-lettered.*/\1/' <<<"$summary")
dead=$(sed -E 's/.*: ([0-9]+) scored, ([0-9]+) dead-lettered.*/\2/' <<<"$summary")
[[ $((scored + dead)) -eq 5000 ]] || { echo "scored $scored + dead $dead != 5000"; exit 1; }
[[ $dead -gt 0 ]] || { echo "expected generated bad events to be dead-lettered"; exit 1; }
crossings=$(grep -c ' threshold_crossed ' "$out" || true)
[[ $crossings -gt 0 ]] || { echo "no threshold_crossed signal printed"; cat "$out"; exit 1; }
printed=$(grep -cE '^20[0-9]{2}-' "$out" || true)
total=$(grep -oE '(breadth_expansion|seat_expansion|threshold_crossed|routing_changed) [0-9]+' <<<"$summary" |
  awk '{s += $2} END {print s}')
[[ $printed -eq $total ]] || { echo "printed $printed signal lines, summary counts $total"; exit 1; }
echo "demo ok: $scored scored, $dead dead-lettered, $printed signals"
