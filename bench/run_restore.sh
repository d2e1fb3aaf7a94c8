#!/usr/bin/env bash
# Restore from the changelog at scale: builds side by side, alternating, on one broker.
# Usage: bench/run_restore.sh EVENTS ACCOUNTS ROUNDS BIN [BIN...]   (release build for the tools)
#
# EVENTS generated events over ACCOUNTS accounts (uniform activity: every account gets state)
# go through `pqa-scorer run` (the first BIN, exactly once, 4 partitions), which leaves a
# changelog. Then, ROUNDS times, each BIN in turn restores every partition into an empty state
# directory; one markdown row per restore: records, seconds (the sum of the partitions'), and
# records/s from the service's "partition restored" log lines, and the process's peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
events=$1 accounts=$2 rounds=$3
shift 3
bins=("$@")
tools=build/release
source bench/with_broker.sh

config() {  # config NAME INPUT: restoring instances read an empty input, so that they add
  # nothing to the changelog they restore from.
  cat >"$work/$1.yaml" <<YAML
kafka:
  bootstrap_servers: "$bootstrap"
  group_id: rs-$1
  transactional_id: rs-$1
  topics: { input: $2, signals: rs-signals, scores: rs-scores, changelog: rs-changelog,
            dead_letter: rs-dlq, create: true, replication_factor: 1 }
service: { state_dir: $work/state-$1, idle_advance_ms: 0 }
admin: { bind_address: 127.0.0.1, port: 0 }
YAML
}

"$tools/bench/pqa-gen" --events "$events" --accounts "$accounts" --zipf 0 --seed 9 >"$work/in.jsonl"
"$tools/services/scorer/pqa-load" --bootstrap "$bootstrap" --topic rs-in --input "$work/in.jsonl" \
  --create-partitions 4 >/dev/null
"$tools/services/scorer/pqa-load" --bootstrap "$bootstrap" --topic rs-empty --input /dev/null \
  --create-partitions 4 >/dev/null
config source rs-in
"${bins[0]}" run --config "$work/source.yaml" 2>"$work/source.log" &
source_pid=$!
"$tools/bench/pqa-bench-e2e" wait --bootstrap "$bootstrap" --topic rs-in --group rs-source \
  --timeout 1800 >/dev/null
kill -TERM "$source_pid" && wait "$source_pid" || true

echo "| round | build | records | seconds | records/s | peak RSS MB |"
echo "| ---: | --- | ---: | ---: | ---: | ---: |"
for round in $(seq 1 "$rounds"); do
  for i in "${!bins[@]}"; do
    name="r$round-b$i"
    config "$name" rs-empty
    "${bins[$i]}" run --config "$work/$name.yaml" 2>"$work/$name.log" &
    pid=$!
    for _ in $(seq 1 6000); do
      [[ $(grep -c '"partition restored"' "$work/$name.log" || true) -ge 4 ]] && break
      sleep 0.1
    done
    rss=$(awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$pid/status")
    kill -TERM "$pid"
    wait "$pid" || true
    grep '"partition restored"' "$work/$name.log" |
      sed 's/.*"records":"\([0-9]*\)".*"seconds":"\([0-9.]*\)".*/\1 \2/' |
      awk -v r="$round" -v b="${bins[$i]}" -v rss="$rss" \
        '{n += $1; s += $2} END {printf "| %d | %s | %d | %.2f | %.0f | %s |\n", r, b, n, s, n / s, rss}'
    rm -rf "$work/state-$name"
  done
done
