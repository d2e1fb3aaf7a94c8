#!/usr/bin/env bash
# The CRM relay through a real Kafka broker (scripts/kafka.sh) to a fast local receiver
# (pqa-bench-relay sink: answers 200 at once, keep-alive). Usage:
#   bench/run_relay.sh [THROUGHPUT_SIGNALS] [LATENCY_SECONDS] [LATENCY_RATE]
# Needs a release build. Prints one line per run (sink figures, then the relay's own
# signal-to-2xx histogram quantiles from /metrics).
#
# 1. Latency: the relay is running and warm; signals are produced at LATENCY_RATE/s (1,000 by
#    default) for LATENCY_SECONDS; latency = sink receive time - produce time (the signal's
#    event_time, which the Standard Webhooks envelope carries as `timestamp`).
# 2. Throughput, Standard Webhooks (one signal per request, signed): THROUGHPUT_SIGNALS are
#    produced first, then a relay in a fresh group drains them; deliveries/s from the first
#    request to the last.
# 3. Throughput, HubSpot preset (batches of up to 100 accounts, coalesced): the same backlog.
set -euo pipefail
cd "$(dirname "$0")/.."
signals=${1:-100000}
latency_seconds=${2:-30}
latency_rate=${3:-1000}
bin=build/release
work=$(mktemp -d)
broker=$work/broker
relay_pid=
cleanup() {
  [ -n "$relay_pid" ] && kill -TERM "$relay_pid" 2>/dev/null && wait "$relay_pid" 2>/dev/null
  scripts/kafka.sh stop "$broker" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

bootstrap=$(scripts/kafka.sh start "$broker")
touch "$work/empty"
for t in lat thr; do
  "$bin/services/scorer/pqa-load" --bootstrap "$bootstrap" --topic "bench-$t-signals" \
    --input "$work/empty" --create-partitions 4 --config config/scorer.yaml >/dev/null
done

start_relay() {  # start_relay NAME TOPIC FORMAT SINK_PORT
  local admin
  admin=$(free_port)
  cat >"$work/$1.yaml" <<YAML
kafka:
  bootstrap_servers: "$bootstrap"
  topics: { signals: $2, create: true, replication_factor: 1 }
admin: { bind_address: 127.0.0.1, port: $admin }
relay:
  group_id: bench-$1
  dead_letter_topic: bench-$1-dlq
  endpoints:
    - name: sink
      url: "http://127.0.0.1:$4/hooks"
      format: $3
      secrets: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
      max_in_flight: 16
YAML
  "$bin/services/scorer/pqa-scorer" relay --config "$work/$1.yaml" 2>"$work/$1.log" &
  relay_pid=$!
  echo "$admin" >"$work/$1.admin"
  until curl -sf "http://127.0.0.1:$admin/metrics" | grep -q '^pqa_relay_assigned_partitions [1-9]'; do
    sleep 0.2
  done
}
stop_relay() {
  kill -TERM "$relay_pid" && wait "$relay_pid" || true
  relay_pid=
}
relay_quantiles() {  # the relay's own signal-to-2xx p50/p99 (histogram buckets, upper bounds)
  curl -s "http://127.0.0.1:$(cat "$work/$1.admin")/metrics" | python3 -c '
import sys
buckets = []
for line in sys.stdin:
    if line.startswith("pqa_relay_signal_to_2xx_seconds_bucket"):
        le = line.split("le=\"")[1].split("\"")[0]
        buckets.append((float("inf") if le == "+Inf" else float(le), float(line.split()[-1])))
total = buckets[-1][1]
q = lambda p: next(le for le, c in buckets if c >= p * total) * 1000
print(f"relay histogram: signals {total:.0f}, p50 <= {q(0.5):g} ms, p99 <= {q(0.99):g} ms")'
}

echo "### Latency: $latency_rate signals/s for $latency_seconds s (warm relay)"
port=$(free_port)
n=$((latency_rate * latency_seconds))
"$bin/bench/pqa-bench-relay" sink --port "$port" --expect $((n + 2000)) --timeout-s 9999 \
  >"$work/lat-sink.out" &
sink_pid=$!
start_relay lat bench-lat-signals standard_webhooks "$port"
"$bin/bench/pqa-bench-relay" produce --bootstrap "$bootstrap" --topic bench-lat-signals \
  --signals 2000 --accounts 1000 --rate 1000 >/dev/null  # warm-up
"$bin/bench/pqa-bench-relay" produce --bootstrap "$bootstrap" --topic bench-lat-signals \
  --signals "$n" --accounts 1000 --rate "$latency_rate" >/dev/null
wait "$sink_pid"
cat "$work/lat-sink.out"
relay_quantiles lat
stop_relay

for format in standard_webhooks hubspot; do
  echo "### Throughput: $signals signals backlog, $format"
  topic=bench-thr-$format
  "$bin/services/scorer/pqa-load" --bootstrap "$bootstrap" --topic "$topic" \
    --input "$work/empty" --create-partitions 4 --config config/scorer.yaml >/dev/null
  accounts=$([ "$format" = hubspot ] && echo "$signals" || echo 10000)
  "$bin/bench/pqa-bench-relay" produce --bootstrap "$bootstrap" --topic "$topic" \
    --signals "$signals" --accounts "$accounts" >/dev/null
  port=$(free_port)
  "$bin/bench/pqa-bench-relay" sink --port "$port" --expect "$signals" --timeout-s 9999 \
    >"$work/thr-sink.out" &
  sink_pid=$!
  start_relay "thr-$format" "$topic" "$format" "$port"
  wait "$sink_pid"
  cat "$work/thr-sink.out"
  relay_quantiles "thr-$format"
  stop_relay
done
