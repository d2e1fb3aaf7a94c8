#!/usr/bin/env bash
# Two builds of pqa-scorer side by side on one broker, alternating A B A B, so that a change is
# judged against the machine's noise: changelog restore rate, and produce-to-signal latency in
# exactly-once mode at a steady 20,000 events/s (over every signal, and "steady": without the
# first 5 s of output, the service's and the new topics' warm-up).
# Usage: bench/run_ab.sh A_BIN B_BIN [ROUNDS] [LATENCY_SECONDS] [A_HAS_ADMIN: yes|no]
# (release build of this tree for the tools). Prints one markdown row per measurement.
set -euo pipefail
cd "$(dirname "$0")/.."
a_bin=$1 b_bin=$2 rounds=${3:-2} latency_seconds=${4:-20} a_admin=${5:-yes}
bin=build/release
source bench/with_broker.sh

config() {  # NAME PROCESSING INPUT CHANGELOG WITH_ADMIN
  cat >"$work/$1.yaml" <<YAML
kafka:
  bootstrap_servers: "$bootstrap"
  group_id: ab-$1
  transactional_id: ab-$1
  processing: $2
  topics: { input: $3, signals: $1-signals, scores: $1-scores, changelog: $4,
            dead_letter: $1-dlq, create: true, replication_factor: 1 }
service: { state_dir: $work/state-$1, idle_advance_ms: 0 }
YAML
  [[ $5 == yes ]] && echo "admin: { bind_address: 127.0.0.1, port: 0 }" >>"$work/$1.yaml"
  return 0
}
run_until() {  # BIN NAME PATTERN COUNT: runs until the log has COUNT lines matching PATTERN
  "$1" run --config "$work/$2.yaml" 2>"$work/$2.log" &
  local pid=$!
  for _ in $(seq 1 1200); do
    [[ $(grep -c "$3" "$work/$2.log" || true) -ge $4 ]] && break
    sleep 0.1
  done
  kill -TERM "$pid"
  wait "$pid" || true
}

# A changelog to restore from: 1,000,000 events through B, exactly once.
"$bin/bench/pqa-gen" --events 1000000 --accounts 10000 >"$work/in.jsonl"
"$bin/services/scorer/pqa-load" --bootstrap "$bootstrap" --topic ab-in --input "$work/in.jsonl" \
  --create-partitions 4 >/dev/null
config source exactly_once ab-in ab-changelog yes
"$b_bin" run --config "$work/source.yaml" 2>"$work/source.log" &
source_pid=$!
"$bin/bench/pqa-bench-e2e" wait --bootstrap "$bootstrap" --topic ab-in --group ab-source >/dev/null
kill -TERM "$source_pid" && wait "$source_pid" || true

latency_stream "$latency_seconds"

echo "| round | build | restore records/s | latency p50 ms | p99 ms | p99.9 ms | max ms | steady p50 ms | steady p99 ms | steady p99.9 ms | steady max ms |"
echo "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for round in $(seq 1 "$rounds"); do
  for which in A B; do
    if [[ $which == A ]]; then exe=$a_bin admin=$a_admin; else exe=$b_bin admin=yes; fi
    name=r$round-$which
    # Restore: an empty state directory, the whole changelog.
    config "$name-restore" exactly_once ab-in ab-changelog "$admin"
    run_until "$exe" "$name-restore" '"partition restored"' 4
    restore=$(grep '"partition restored"' "$work/$name-restore.log" |
      sed 's/.*"records":"\([0-9]*\)".*"seconds":"\([0-9.]*\)".*/\1 \2/' |
      awk '{r += $1; s += $2} END {printf "%.0f", r / s}')
    # Latency: a fresh topic at 20,000 events/s.
    create_input "$name-lat"
    config "$name-lat" exactly_once "$name-lat" "$name-lat-changelog" "$admin"
    "$exe" run --config "$work/$name-lat.yaml" 2>"$work/$name-lat.log" &
    pid=$!
    measure_latency "$name-lat" "$name-lat-signals" "$latency_seconds" "$work/$name-lat.txt"
    kill -TERM "$pid" && wait "$pid" || true
    awk -v r="$round" -v w="$which" -v x="$restore" \
      '{printf "| %d | %s | %d | %d | %d | %d | %d | %d | %d | %d | %d |\n", r, w, x, $4, $6, $8, $10, $14, $16, $18, $20}' "$work/$name-lat.txt"
  done
done
