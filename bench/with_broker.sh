# Sourced (not run) by the benchmark scripts that need a Kafka broker, from the repository's
# root: makes a scratch directory ($work), starts a broker of its own there ($broker, its
# address in $bootstrap), and on exit stops every `pqa-scorer run` whose configuration is
# under $work, stops the broker and removes the directory.
work=$(mktemp -d)
broker=$work/broker
cleanup() {
  pkill -f "pqa-scorer run --config $work" 2>/dev/null || true
  scripts/kafka.sh stop "$broker" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
bootstrap=$(scripts/kafka.sh start "$broker")

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
