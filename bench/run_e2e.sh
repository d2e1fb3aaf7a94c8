#!/usr/bin/env bash
# End-to-end benchmarks of `pqa-scorer run` through a real Kafka broker (scripts/kafka.sh) on
# this machine. Usage: bench/run_e2e.sh [EVENTS] [LATENCY_SECONDS]
# Needs a release build (scripts/build.sh release). Prints markdown tables.
#
# 1. Throughput: EVENTS generated events (4 partitions) are loaded first; then, in one run,
#    the raw rate at which librdkafka alone consumes the topic (pqa-bench-e2e raw, and kcat
#    to /dev/null) and the service's rate in exactly-once and at-least-once mode (a fresh
#    group and state each), from its first committed offset to its last.
# 2. Latency: events produced at a steady 20,000/s for LATENCY_SECONDS + 5; each signal's
#    latency is the time it became readable (read_committed) minus the produce time of the
#    event that caused it; over every signal, and "steady" without the first 5 s of output.
# 3. Restore: the exactly-once instance's state directory is deleted and a new instance
#    restores every partition from the changelog; records/s from its log.
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-1000000}
latency_seconds=${2:-30}
bin=build/release
source bench/with_broker.sh
"$bin/bench/pqa-gen" --events "$events" --accounts 10000 >"$work/in.jsonl"
"$bin/services/scorer/pqa-load" --bootstrap "$bootstrap" --topic bench-in --input "$work/in.jsonl" \
  --create-partitions 4 >/dev/null

config() {  # config NAME PROCESSING INPUT: writes $work/NAME.yaml
  service_config "$1" "bench-$1" "$2" "$3"
}

start_service() {  # start_service NAME: runs in the background, log in $work/NAME.log
  "$bin/services/scorer/pqa-scorer" run --config "$work/$1.yaml" >/dev/null 2>>"$work/$1.log" &
  echo $!
}

stop_service() {  # the service was started in a subshell: not our child, so poll for its exit
  kill -TERM "$1"
  while kill -0 "$1" 2>/dev/null; do sleep 0.1; done
}

raw=$("$bin/bench/pqa-bench-e2e" raw --bootstrap "$bootstrap" --topic bench-in)  # warms the cache
raw=$("$bin/bench/pqa-bench-e2e" raw --bootstrap "$bootstrap" --topic bench-in)
raw_rate=$(awk '{print $4}' <<<"$raw")
kcat_start=$(date +%s.%N)
kcat -b "$bootstrap" -C -t bench-in -o beginning -e -q >/dev/null
kcat_rate=$(awk -v s="$kcat_start" -v e="$(date +%s.%N)" -v n="$events" 'BEGIN{printf "%.0f", n/(e-s)}')

echo "| consumer ($events events, 4 partitions) | events/s | ratio to raw librdkafka |"
echo "| --- | ---: | ---: |"
echo "| librdkafka alone (pqa-bench-e2e raw) | $raw_rate | 1.000 |"
awk -v k="$kcat_rate" -v r="$raw_rate" 'BEGIN{printf "| kcat to /dev/null | %d | %.3f |\n", k, k/r}'
for mode in exactly_once at_least_once; do
  config "tp-$mode" "$mode" bench-in
  pid=$(start_service "tp-$mode")
  result=$("$bin/bench/pqa-bench-e2e" wait --bootstrap "$bootstrap" --topic bench-in \
    --group "bench-tp-$mode")
  stop_service "$pid"
  fair=$(rate_from_assignment "$events" "$result" "$work/tp-$mode.log")
  steady=$(awk '{print $4}' <<<"$result")
  total=$(awk '{print $3}' <<<"$result")
  first=$(awk '{print $5}' <<<"$result")
  # From the assignment, timed as the raw consumer is (the fair ratio); and, as measured until
  # 2026-12-07, from the first commit to the last, the first commit's events left out.
  awk -v m="$mode" -v n="$events" -v s="$steady" -v t="$total" -v f="$first" -v r="$raw_rate" \
    -v fair="$fair" 'BEGIN {
    rate = s > 0 ? (n - f) / s : 0  # in printf arguments, mawk reads ">" as a redirection
    printf "| pqa-scorer run, %s, from its assignment (from start-up %.2f s) | %.0f | %.3f |\n",
      m, t, fair, fair / r
    printf "| pqa-scorer run, %s, first to last commit (%.2f s) | %.0f | %.3f |\n",
      m, s, rate, rate / r }'
done

echo
echo "| restore (exactly_once state, $events events) | records | seconds | records/s |"
echo "| --- | ---: | ---: | ---: |"
rm -rf "$work/state-tp-exactly_once"
sed -i "s/group_id: bench-tp-exactly_once/group_id: bench-restore/" "$work/tp-exactly_once.yaml"
: >"$work/tp-exactly_once.log"
pid=$(start_service tp-exactly_once)
for _ in $(seq 1 600); do
  [[ $(grep -c '"partition restored"' "$work/tp-exactly_once.log" || true) -ge 4 ]] && break
  sleep 0.1
done
stop_service "$pid"
grep '"partition restored"' "$work/tp-exactly_once.log" |
  sed 's/.*"records":"\([0-9]*\)".*"seconds":"\([0-9.]*\)".*/\1 \2/' |
  awk '{r += $1; s += $2} END {printf "| 4 partitions, restored one after another | %d | %.3f | %.0f |\n", r, s, r / s}'

echo
echo "| latency at 20,000 events/s for ${latency_seconds} s (+5 s warm-up) | signals | p50 ms | p99 ms | p99.9 ms | max ms | steady: signals | p50 ms | p99 ms | p99.9 ms | max ms |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
latency_stream "$latency_seconds"
for mode in exactly_once at_least_once; do
  topic="lat-in-$mode"
  create_input "$topic"
  config "lat-$mode" "$mode" "$topic"
  pid=$(start_service "lat-$mode")
  measure_latency "$topic" "lat-$mode-signals" "$latency_seconds" "$work/lat-$mode.txt"
  stop_service "$pid"
  awk -v m="$mode" '{printf "| %s | %d | %d | %d | %d | %d | %d | %d | %d | %d | %d |\n",
    m, $2, $4, $6, $8, $10, $12, $14, $16, $18, $20}' \
    "$work/lat-$mode.txt"
done
