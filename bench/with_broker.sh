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
