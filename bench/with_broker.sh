# Sourced (not run) by the benchmark scripts that need a Kafka broker, from the repository's
# root: makes a scratch directory ($work), starts a broker of its own there ($broker, its
# address in $bootstrap), and on exit stops every `pqa-scorer run` whose configuration is
# under $work, stops the broker and removes the directory. Also defines the steps of a latency
# measurement that several scripts share (latency_stream, create_input, measure_latency).
work=$(mktemp -d)
broker=$work/broker
cleanup() {
  pkill -f "pqa-scorer run --config $work" 2>/dev/null || true
  scripts/kafka.sh stop "$broker" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
bootstrap=$(scripts/kafka.sh start "$broker")
# What the container image sets (docker/Dockerfile): glibc's malloc asks for transparent huge
# pages. Exported after the broker started, so that its JVM runs as it would anyway; the
# service, the raw consumer and the tools share it. An empty GLIBC_TUNABLES turns it off.
export GLIBC_TUNABLES=${GLIBC_TUNABLES-glibc.malloc.hugetlb=1}

# service_tunables VARIANT: the GLIBC_TUNABLES a service of that variant runs with (the
# scripts' variant no-thp: none, so glibc's malloc keeps to 4 kB pages; no-trim: as set, and
# glibc's malloc keeps up to 256 MB freed at the top of its heap instead of returning it).
service_tunables() {
  case $1 in
    no-thp) ;;
    no-trim) printf '%s' "${GLIBC_TUNABLES:+$GLIBC_TUNABLES:}glibc.malloc.trim_threshold=268435456" ;;
    *) printf '%s' "$GLIBC_TUNABLES" ;;
  esac
}

# service_config NAME GROUP PROCESSING INPUT [KAFKA_LINES]: writes $work/NAME.yaml, a
# `pqa-scorer run` against this broker: group and transactional id GROUP, output topics and
# state directory named after NAME, and KAFKA_LINES (indented YAML lines, each ending in a
# newline) added to its kafka section.
service_config() {
  {
    printf 'kafka:\n  bootstrap_servers: "%s"\n  group_id: %s\n  transactional_id: %s\n' \
      "$bootstrap" "$2" "$2"
    printf '  processing: %s\n%s' "$3" "${5:-}"
    printf '  topics:\n    input: %s\n' "$4"
    for kind in signals scores changelog; do printf '    %s: %s-%s\n' "$kind" "$1" "$kind"; done
    printf '    dead_letter: %s-dlq\n    create: true\n    replication_factor: 1\n' "$1"
    printf 'service:\n  state_dir: %s/state-%s\n  idle_advance_ms: 0\n' "$work" "$1"
    printf 'admin: { bind_address: 127.0.0.1, port: 0 }\n'
  } >"$work/$1.yaml"
}

# rate_from_assignment EVENTS WAIT_RESULT SERVICE_LOG: events/s from the time the service
# logged its last partition assigned (restored, about to fetch) to the commit of the last
# event (the wait result's fifth field), as `pqa-bench-e2e raw` is timed from its assignment
# to the last end of partition. Unlike "first to last commit" it counts the first interval's
# events with their time, which is the fair comparison with the raw rate.
rate_from_assignment() {
  local assigned
  assigned=$(grep '"message":"partition assigned"' "$3" | tail -1 |
    sed -E 's/.*"time":"([^"]*)".*/\1/')
  [[ -n $assigned ]] || { echo 0; return; }
  awk -v n="$1" -v done="$(awk '{print $6}' <<<"$2")" \
    -v since="$(date -u -d "$assigned" +%s%3N)" \
    'BEGIN { s = (done - since) / 1000; rate = s > 0 ? n / s : 0; printf "%.0f", rate }'
}

# The latency measurement the scripts share; they set $bin (the release build) first.
# latency_stream SECONDS: writes $work/lat.jsonl, SECONDS + 5 s of events at 20,000/s (the
# reader leaves the first 5 s of output out of its steady figures), over the last two days.
latency_stream() {
  "$bin/bench/pqa-gen" --events $((20000 * ($1 + 5))) --accounts 10000 --seed 7 \
    --start "$(date -u -d '-2 days' +%Y-%m-%dT%H:%M:%SZ)" --days 2 >"$work/lat.jsonl"
}

# create_input TOPIC: an empty input topic of 4 partitions.
create_input() {
  "$bin/services/scorer/pqa-load" --bootstrap "$bootstrap" --topic "$1" --input /dev/null \
    --create-partitions 4 >/dev/null
}

# measure_latency INPUT SIGNALS SECONDS OUT: with a service just started on INPUT, gives it
# 5 s to join and restore, then produces $work/lat.jsonl into INPUT at 20,000 events/s while
# pqa-bench-e2e reads SIGNALS; its figures (see bench/e2e.cpp) go to OUT.
measure_latency() {
  sleep 5
  "$bin/bench/pqa-bench-e2e" latency --bootstrap "$bootstrap" --topic "$2" \
    --seconds $(($3 + 10)) --warmup 5 >"$4" &
  local reader=$!
  sleep 1
  "$bin/services/scorer/pqa-load" --bootstrap "$bootstrap" --topic "$1" \
    --input "$work/lat.jsonl" --rate 20000 >/dev/null
  wait "$reader" || true
}
