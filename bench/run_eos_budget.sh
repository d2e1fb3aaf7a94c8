#!/usr/bin/env bash
# Where the CPU of an exactly-once run goes, against the CPU that the throughput target leaves.
# Usage: bench/run_eos_budget.sh [EVENTS] [ROUNDS] [VARIANT...]   (needs scripts/build.sh release)
#
# Issue 3 asks for exactly-once throughput >= 0.5 of the rate at which librdkafka alone
# consumes the same topic. Here the broker and the service share the machine's two cores, so
# at that rate a run of EVENTS events may use at most 2 cores x EVENTS / (0.5 x raw rate)
# CPU-seconds in all: the service's and the broker's together. Each round measures, on one
# broker and alternating the variants, the raw rate, then for each variant the service's
# events/s two ways: from its partitions' assignment to the commit of the last event, timed as
# the raw consumer is (from its assignment to the last end of partition): the fair ratio; and
# the events after its first commit over the time from it to the last (the measure until
# 2026-12-07, which leaves the first interval's events out with their time: up to 1 s of
# catching up, so it reads higher). Then its CPU-seconds and the broker's over the run
# (utime + stime from /proc), and prints them next to that budget.
#
# Variants (the service's configuration; everything else as in bench/run_e2e.sh). The whole
# input is in the topic before the service starts, so the shipped default catches up (it
# commits every kafka.catch_up.commit_interval_ms while far behind); the others do not:
#   default       exactly_once, as shipped: commit_interval_ms 80, catch-up on, lz4
#   catch-up-off  commit_interval_ms 80 throughout
#   previous      catch-up off and the consumer's queued.min.messages and
#                 queued.max.messages.kbytes at librdkafka's 100000 and 64 MB:
#                 the shipped configuration before the changes of 2026-12-06 (§5j) and
#                 2026-12-07 (§5q)
#   uncompressed  catch-up off, the producer's compression.type none (no broker decompression)
#   interval-1s   catch-up off, commit_interval_ms 1000 (fewer, larger transactions)
#   catch-up-3s   as default, but catching up commits every 3,000 ms
#   queue-64m, queue-128m, queue-256m, queue-1g: as default, with the input consumer's
#                 queued.max.messages.kbytes set to that size (the service's default is
#                 128 MB since 2026-12-07, so queue-128m is default; librdkafka's is 64 MB)
#   interval-100ms catch-up off, commit_interval_ms 100 (Kafka Streams' default)
#   no-thp        as default, but glibc's malloc without transparent huge pages (an empty
#                 GLIBC_TUNABLES; bench/with_broker.sh sets what the container image sets)
#   no-trim       as default, but glibc's malloc trims its heap only above 256 MB free
#   base          as default, but the pqa-scorer binary named by $BASE_SCORER (another build,
#                 e.g. the one before a change, measured against this tree's on one broker)
# Without VARIANT arguments: default, catch-up-off, uncompressed, interval-1s, interval-100ms.
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-1000000}
rounds=${2:-2}
variants=("${@:3}")
[ ${#variants[@]} -gt 0 ] || variants=(default catch-up-off uncompressed interval-1s interval-100ms)
# variant_settings VARIANT: sets the variant's commit interval, compression, catch-up mapping
# and extra kafka lines ($interval $compression $catch_up $extra); fails for an unknown name.
variant_settings() {
  interval=80 compression=lz4 catch_up="lag_events: 50000" extra=""
  case $1 in
    default | no-thp | no-trim) ;;
    base) [ -x "${BASE_SCORER:-}" ] || { echo "variant base needs BASE_SCORER=BINARY" >&2; return 2; } ;;
    catch-up-off) catch_up="lag_events: 0" ;;
    previous)
      catch_up="lag_events: 0"
      extra="  consumer_properties: { queued.min.messages: 100000, queued.max.messages.kbytes: 65536 }"$'\n' ;;
    uncompressed) catch_up="lag_events: 0" compression=none ;;
    interval-1s) catch_up="lag_events: 0" interval=1000 ;;
    interval-100ms) catch_up="lag_events: 0" interval=100 ;;
    catch-up-3s) catch_up="lag_events: 50000, commit_interval_ms: 3000" ;;
    queue-64m | queue-128m | queue-256m | queue-1g)
      local kb
      case $1 in queue-64m) kb=65536 ;; queue-128m) kb=131072 ;; queue-256m) kb=262144 ;; *) kb=1048576 ;; esac
      extra="  consumer_properties: { queued.max.messages.kbytes: $kb }"$'\n' ;;
    *) echo "unknown variant: $1" >&2; return 2 ;;
  esac
}
for variant in "${variants[@]}"; do  # before a broker is started for nothing
  variant_settings "$variant" || exit 2
done
bin=build/release
source bench/with_broker.sh
broker_pid=$(cat "$broker/pid")
"$bin/bench/pqa-gen" --events "$events" --accounts 10000 >"$work/in.jsonl"
"$bin/services/scorer/pqa-load" --bootstrap "$bootstrap" --topic bench-in --input "$work/in.jsonl" \
  --create-partitions 4 >/dev/null

cpu_seconds() {  # cpu_seconds PID: utime + stime of the process (all its threads), in seconds
  awk -v hz="$(getconf CLK_TCK)" '{sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz}' \
    "/proc/$1/stat"
}

thread_cpu() {  # thread_cpu PID: "main X librdkafka Y rocksdb Z other W" CPU-seconds by thread kind
  local hz
  hz=$(getconf CLK_TCK)
  for stat in /proc/"$1"/task/*/stat; do
    local line name
    line=$(cat "$stat" 2>/dev/null) || continue
    name=${line#*(}
    name=${name%%)*}
    echo "$name $(awk '{sub(/^.*\) /, ""); print $12 + $13}' <<<"$line")"
  done | awk -v hz="$hz" -v main="$(cat /proc/"$1"/comm)" '
    { kind = ($1 == main) ? "main" : ($1 ~ /^rdk:/) ? "librdkafka" : ($1 ~ /^rocksdb:/) ? "rocksdb" : "other"
      cpu[kind] += $NF }
    END { printf "main %.2f librdkafka %.2f rocksdb %.2f other %.2f",
            cpu["main"] / hz, cpu["librdkafka"] / hz, cpu["rocksdb"] / hz, cpu["other"] / hz }'
}

peak_mb() {  # peak_mb PID: the process's peak resident memory (VmHWM), in MiB
  awk '$1 == "VmHWM:" {printf "%.0f", $2 / 1024}' "/proc/$1/status"
}

# config NAME INTERVAL_MS COMPRESSION CATCH_UP [KAFKA_YAML]: CATCH_UP is the kafka.catch_up
# mapping's content, e.g. "lag_events: 0": writes $work/NAME.yaml
config() {
  local lines="  commit_interval_ms: $2"$'\n'
  lines+="  producer_properties: { compression.type: $3 }"$'\n'
  lines+="  catch_up: { $4 }"$'\n'
  service_config "$1" "$1" exactly_once bench-in "$lines${5:-}"
}

# run_variant ROUND NAME INTERVAL_MS COMPRESSION CATCH_UP RAW_RATE [KAFKA_YAML]: one row
run_variant() {
  local name="r$1-$2"
  config "$name" "$3" "$4" "$5" "${7:-}"
  local broker_before pid result service_cpu broker_cpu fair
  broker_before=$(cpu_seconds "$broker_pid")
  local scorer="$bin/services/scorer/pqa-scorer"
  [[ $2 == base ]] && scorer=$BASE_SCORER
  GLIBC_TUNABLES=$(service_tunables "$2") "$scorer" run --config "$work/$name.yaml" >/dev/null 2>>"$work/$name.log" &
  pid=$!
  result=$("$bin/bench/pqa-bench-e2e" wait --bootstrap "$bootstrap" --topic bench-in --group "$name")
  service_cpu=$(cpu_seconds "$pid")
  fair=$(rate_from_assignment "$events" "$result" "$work/$name.log")
  threads[$2]+="| $1 | $2 | $(thread_cpu "$pid" | awk '{printf "%s | %s | %s | %s", $2, $4, $6, $8}') | $(peak_mb "$pid") |"$'\n'
  broker_cpu=$(awk -v a="$broker_before" -v b="$(cpu_seconds "$broker_pid")" 'BEGIN{printf "%.2f", b - a}')
  kill -TERM "$pid"
  wait "$pid" || true
  awk -v round="$1" -v v="$2" -v n="$events" -v r="$6" -v res="$result" -v sc="$service_cpu" \
    -v bc="$broker_cpu" -v fair="$fair" 'BEGIN {
      split(res, f, " "); s = f[4]; rate = s > 0 ? (n - f[5]) / s : 0
      budget = 2 * n / (0.5 * r)
      printf "| %d | %s | %.0f | %.3f | %.0f | %.3f | %.2f | %.2f | %.2f | %.2f |\n",
        round, v, fair, fair / r, rate, rate / r, sc, bc, sc + bc, budget }'
  rm -rf "$work/state-$name"
}

declare -A threads
echo "| round | variant | events/s from assignment | ratio to raw | events/s first to last commit | ratio | service CPU-s | broker CPU-s | together | budget at 0.5 of raw |"
echo "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
"$bin/bench/pqa-bench-e2e" raw --bootstrap "$bootstrap" --topic bench-in >/dev/null  # warms the cache
for round in $(seq 1 "$rounds"); do
  raw_rate=$("$bin/bench/pqa-bench-e2e" raw --bootstrap "$bootstrap" --topic bench-in | awk '{print $4}')
  echo "| $round | librdkafka alone (raw) | $raw_rate | 1.000 | | | | | | |"
  for variant in "${variants[@]}"; do
    variant_settings "$variant"
    run_variant "$round" "$variant" "$interval" "$compression" "$catch_up" "$raw_rate" "$extra"
  done
done

echo
echo "| round | variant | service main thread CPU-s | librdkafka threads | RocksDB threads | other threads | peak RSS MiB |"
echo "| ---: | --- | ---: | ---: | ---: | ---: | ---: |"
for variant in "${variants[@]}"; do printf "%s" "${threads[$variant]}"; done
