#!/usr/bin/env bash
# Exactly-once produce-to-signal latency at a steady 20,000 events/s, for configuration variants
# of one build side by side on one broker (alternating), with what each run's commits took.
# Usage: bench/run_eos_latency.sh [ROUNDS] [SECONDS] [VARIANT...]   (needs scripts/build.sh release)
#
# The latency of a signal in exactly-once mode is bounded by the commit cycle: an event waits
# for the end of the interval it arrived in, then for that transaction's commit. So next to the
# latency figures each row gives the commits of the run (pqa_commit_duration_seconds, scraped
# from the admin endpoint before the service stops): how many, their mean, and how many took
# longer than 32, 64 and 128 ms.
#
# Variants (everything else as shipped; all three unless named):
#   default        as shipped (commit_interval_ms 80)
#   backoff-10ms   the producer's retry.backoff.ms 10 instead of librdkafka's 100: a transaction
#                  call answered CONCURRENT_TRANSACTIONS (the previous one's markers still being
#                  written) is retried after this back-off
#   interval-100ms commit_interval_ms 100 (Kafka Streams' default; the default before 2026-12-06)
#   no-thp         glibc's malloc without transparent huge pages (an empty GLIBC_TUNABLES;
#                  bench/with_broker.sh sets what the container image sets)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
seconds=${2:-20}
shift $(($# < 2 ? $# : 2))
variants=("$@")
[[ ${#variants[@]} -gt 0 ]] || variants=(default backoff-10ms interval-100ms)
bin=build/release
source bench/with_broker.sh

latency_stream "$seconds"

variant_lines() {  # variant_lines NAME: the variant's lines for the kafka section
  case $1 in
    default) ;;
    backoff-10ms) printf '  producer_properties: { retry.backoff.ms: 10 }\n' ;;
    interval-100ms) printf '  commit_interval_ms: 100\n' ;;
    no-thp) ;;  # an environment variable, not configuration (run_variant)
    *) echo "unknown variant $1" >&2 && exit 2 ;;
  esac
}

admin_port() {  # admin_port LOG: the port the service's admin endpoint listens on
  for _ in $(seq 1 100); do
    local port
    port=$(grep -o '"listening".*"port":"[0-9]*"' "$1" 2>/dev/null | grep -o '[0-9]*"$' | tr -d '"' || true)
    [[ -n $port ]] && echo "$port" && return 0
    sleep 0.1
  done
  echo "no admin port in $1" >&2
  return 1
}

commit_summary() {  # commit_summary METRICS_FILE: "COUNT MEAN_MS OVER_32 OVER_64 OVER_128"
  # The histogram's bounds double from 1 ms, so 32, 64 and 128 ms are bucket bounds.
  awk '
    /^pqa_commit_duration_seconds_count/ { n = $2 }
    /^pqa_commit_duration_seconds_sum/ { s = $2 }
    /^pqa_commit_duration_seconds_bucket/ {
      match($0, /le="[^"]*"/); le = substr($0, RSTART + 4, RLENGTH - 5)
      if (le == "0.032" || le == "0.064" || le == "0.128") upto[le] = $2 }
    END {
      printf "%d %.1f %d %d %d", n, n ? 1000 * s / n : 0,
        n - upto["0.032"], n - upto["0.064"], n - upto["0.128"]
    }' "$1"
}

run_variant() {  # run_variant ROUND VARIANT: one table row
  local name="r$1-$2" pid port
  create_input "$name-in"
  service_config "$name" "$name" exactly_once "$name-in" "$(variant_lines "$2")"$'\n'
  GLIBC_TUNABLES=$(service_tunables "$2") "$bin/services/scorer/pqa-scorer" run \
    --config "$work/$name.yaml" 2>"$work/$name.log" &
  pid=$!
  port=$(admin_port "$work/$name.log")
  measure_latency "$name-in" "$name-signals" "$seconds" "$work/$name.txt"
  curl -sf "http://127.0.0.1:$port/metrics" >"$work/$name.metrics"
  kill -TERM "$pid" && wait "$pid" || true
  rm -rf "$work/state-$name"
  local commits
  commits=$(commit_summary "$work/$name.metrics")
  awk -v r="$1" -v v="$2" -v c="$commits" '{
      split(c, f, " ")
      printf "| %d | %s | %d | %d | %d | %d | %d | %s | %s | %s |\n",
        r, v, $4, $6, $14, $16, $20, f[1], f[2], f[3] " / " f[4] " / " f[5] }' "$work/$name.txt"
}

echo "| round | variant | p50 ms | p99 ms | steady p50 ms | steady p99 ms | steady max ms | commits | mean commit ms | commits > 32 / 64 / 128 ms |"
echo "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
# A freshly started broker takes seconds over its first transactions (signals 3-5 s late in
# a first run of any variant): one unreported run warms it (the first round can still be slow).
run_variant 0 default >/dev/null
for round in $(seq 1 "$rounds"); do
  for variant in "${variants[@]}"; do run_variant "$round" "$variant"; done
done
