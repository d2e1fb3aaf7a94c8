#!/usr/bin/env bash
# Memory of `pqa-scorer run` with ACCOUNTS accounts of state, through a real broker: the peak
# resident set (VmHWM) under two memory budgets, so that one sees the configuration bound it.
# Usage: bench/run_memory.sh [ACCOUNTS] [EVENTS]   (release build; starts its own broker)
# Prints a markdown table (bench/RESULTS.md, section 6).
set -euo pipefail
cd "$(dirname "$0")/.."
accounts=${1:-1000000}
events=${2:-4000000}
bin=build/release
work=$(mktemp -d)
service_pid=
cleanup() {
  [ -n "$service_pid" ] && kill -KILL "$service_pid" 2>/dev/null || true
  scripts/kafka.sh stop "$work/kafka" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
bootstrap=$(scripts/kafka.sh start "$work/kafka")
export GLIBC_TUNABLES=${GLIBC_TUNABLES-glibc.malloc.hugetlb=1}  # as the image runs the service
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Uniform activity (zipf 0): every account gets state, none dominates.
"$bin/bench/pqa-gen" --events "$events" --accounts "$accounts" --zipf 0 --seed 9 >"$work/events.jsonl"
lines=$(wc -l <"$work/events.jsonl")
"$bin/services/scorer/pqa-load" --bootstrap "$bootstrap" --topic mem-in --input "$work/events.jsonl" \
  --create-partitions 4 --config config/scorer.yaml >/dev/null

measure() {  # LABEL BLOCK_CACHE_MB WRITE_BUFFER_MB ACCOUNT_ENTRIES USER_ENTRIES IDENTITY_ENTRIES
  local label=$1 port
  port=$(free_port)
  rm -rf "$work/state"
  cat >"$work/$label.yaml" <<YAML
state:
  cache: { accounts: $4, users: $5, identities: $6 }
  rocksdb: { block_cache_mb: $2, write_buffer_mb: $3 }
kafka:
  bootstrap_servers: "$bootstrap"
  group_id: mem-$label
  topics: { input: mem-in, signals: mem-$label-signals, scores: mem-$label-scores,
            changelog: mem-$label-changelog, dead_letter: mem-$label-dlq, create: true,
            replication_factor: 1 }
service: { state_dir: $work/state, idle_advance_ms: 0 }
admin: { bind_address: 127.0.0.1, port: $port }
YAML
  local started=$SECONDS
  "$bin/services/scorer/pqa-scorer" run --config "$work/$label.yaml" 2>"$work/$label.log" &
  service_pid=$!
  local consumed=0
  while ((consumed < lines)); do
    sleep 1
    consumed=$(curl -sf "http://127.0.0.1:$port/metrics" |
      awk '/^pqa_events_consumed_total/ {s += $2} END {print s + 0}') || consumed=0
  done
  local seconds=$((SECONDS - started))
  # One more commit interval, then the figures.
  sleep 2
  local metrics hwm rss keys
  metrics=$(curl -sf "http://127.0.0.1:$port/metrics")
  hwm=$(awk '/VmHWM/ {print $2}' "/proc/$service_pid/status")
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$service_pid/status")
  keys=$(echo "$metrics" | awk '/^pqa_state_keys/ {s += $2} END {printf "%d", s}')
  kill -TERM "$service_pid" && wait "$service_pid" || true
  service_pid=
  local budget=$(($2 + $3))
  printf '| %s | %d + %d MB | %s / %s / %s | %d | %d s | %d MB | %d MB |\n' \
    "$label" "$2" "$3" "$4" "$5" "$6" "$keys" "$seconds" $((rss / 1024)) $((hwm / 1024))
}

echo "$lines events, $accounts accounts, 4 partitions, exactly-once, one instance"
echo
echo "| budget | RocksDB cache + write buffers | cache entries (accounts / users / identities) | state keys | time to consume | RSS at end | peak RSS |"
echo "| --- | --- | --- | ---: | ---: | ---: | ---: |"
measure shipped 256 64 200000 1000000 1000000
measure small 64 16 50000 250000 250000
