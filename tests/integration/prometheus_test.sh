#!/usr/bin/env bash
# A real Prometheus server scrapes a running `pqa-scorer run` over loopback and evaluates the
# shipped alert rules: the series it stores say what the service did, promtool finds the
# exposition clean, and every metric the dashboard and the alerts use exists.
# Usage: prometheus_test.sh SOURCE_DIR SCORER LOAD GEN KAFKA_DIR WORK_DIR
set -euo pipefail
src=$1 scorer=$2 load=$3 gen=$4 kafka_dir=$5 work=$6
bootstrap=$(cat "$kafka_dir/bootstrap")
rm -rf "$work" && mkdir -p "$work"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  [ -n "${PQA_TEST_KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; [ -f "$work/scorer.log" ] && tail -5 "$work/scorer.log" >&2; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# query EXPR: the first value of an instant query through Prometheus' HTTP API ("" if none).
query() {
  curl -s --get "http://127.0.0.1:$prom_port/api/v1/query" --data-urlencode "query=$1" |
    python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "")'
}
wait_for() {  # SECONDS DESCRIPTION COMMAND...
  local deadline=$((SECONDS + $1)) what=$2; shift 2
  until "$@"; do ((SECONDS < deadline)) || fail "timed out waiting for $what"; sleep 0.5; done
}

# The service, on a topic of its own, with its admin port on a free port.
name=pqa-prom-$$-$RANDOM
"$gen" --events 5000 --accounts 60 --seed 3 --poison-rate 0.01 >"$work/events.jsonl"
lines=$(wc -l <"$work/events.jsonl")
"$load" --bootstrap "$bootstrap" --topic "$name-in" --input "$work/events.jsonl" \
  --create-partitions 2 --config "$src/config/scorer.yaml" >/dev/null
admin_port=$(free_port)
cat >"$work/scorer.yaml" <<YAML
kafka:
  bootstrap_servers: "$bootstrap"
  group_id: $name
  topics: { input: $name-in, signals: $name-signals, scores: $name-scores,
            changelog: $name-changelog, dead_letter: $name-dlq, create: true,
            replication_factor: 1 }
service: { state_dir: $work/state, idle_advance_ms: 0 }
admin: { bind_address: 127.0.0.1, port: $admin_port }
YAML
"$scorer" run --config "$work/scorer.yaml" 2>"$work/scorer.log" &
scorer_pid=$!
pids+=("$scorer_pid")
consumed() {
  curl -sf "http://127.0.0.1:$admin_port/metrics" >"$work/metrics.txt" || return 1
  local n
  n=$(awk '/^pqa_events_consumed_total/ {s += $2} END {print s + 0}' "$work/metrics.txt")
  [ "$n" -eq "$lines" ]
}
wait_for 120 "the service to consume $lines events" consumed
# The lag series appear with their first figures (librdkafka's statistics, every 5 s; the
# partition gauges' refresh), not at 0 before them.
lag_reported() {
  curl -sf "http://127.0.0.1:$admin_port/metrics" >"$work/metrics.txt" || return 1
  grep -q '^pqa_consumer_lag_records{' "$work/metrics.txt" &&
    grep -q '^pqa_event_time_lag_seconds{' "$work/metrics.txt"
}
wait_for 30 "the lag series" lag_reported

# The exposition is clean by promtool's lint.
promtool check metrics <"$work/metrics.txt" || fail "promtool check metrics"
# Every metric the dashboard and the alerts use is exposed.
(cd "$src/deploy/validate" && go build -o "$work/validate" .)
"$work/validate" rules "$src/deploy/k8s/base" >"$work/rules.yaml"
used=$(grep -ohE '\b(pqa|process)_[a-z_]+' "$src/deploy/grafana/pqa-scorer.json" "$work/rules.yaml" |
  sed -E 's/_(bucket|sum|count)$//' | sort -u)
for metric in $used; do
  grep -q "^# TYPE $metric " "$work/metrics.txt" || fail "$metric is used by the dashboard or alerts but not exposed"
done
echo "exposition clean; $(echo "$used" | wc -l) metrics used by dashboard and alerts all exposed"
# ... and every pqa_ metric exposed is plotted (docs/operations.md says the dashboard has them all).
for metric in $(grep -oE '^# TYPE pqa_[a-z_]+' "$work/metrics.txt" | awk '{print $3}'); do
  grep -qE "\b$metric(_bucket|_sum|_count)?\b" "$src/deploy/grafana/pqa-scorer.json" ||
    fail "$metric is exposed but not on the dashboard"
done

# A real Prometheus scrapes it every second and evaluates the shipped rules.
prom_port=$(free_port)
cat >"$work/prometheus.yml" <<YAML
global: { scrape_interval: 1s, evaluation_interval: 1s }
rule_files: [ $work/rules.yaml ]
scrape_configs:
  - job_name: pqa-scorer
    static_configs: [ { targets: [ "127.0.0.1:$admin_port" ] } ]
YAML
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$prom_port" >"$work/prometheus.log" 2>&1 &
pids+=($!)
wait_for 60 "Prometheus to be ready" curl -sf "http://127.0.0.1:$prom_port/-/ready" -o /dev/null
scraped() { [ "$(query 'up{job="pqa-scorer"}')" = "1" ] && [ -n "$(query 'pqa_ready')" ]; }
wait_for 60 "a successful scrape" scraped

total=$(query 'sum(pqa_events_consumed_total{job="pqa-scorer"})')
[ "$total" = "$lines" ] || fail "Prometheus has $total events consumed, expected $lines"
dead=$(query 'pqa_dead_letter_events_total{job="pqa-scorer"}')
decode=$(query 'sum(pqa_decode_errors_total{job="pqa-scorer"})')
[ "$dead" -gt 0 ] && [ "$dead" = "$decode" ] || fail "dead letters $dead, decode errors $decode"
[ "$(query 'pqa_ready{job="pqa-scorer"}')" = "1" ] || fail "pqa_ready is not 1"
[ "$(query 'pqa_assigned_partitions{job="pqa-scorer"}')" = "2" ] || fail "assigned partitions"
signals=$(query 'sum(pqa_signals_emitted_total{job="pqa-scorer"})')
[ "$signals" -gt 0 ] || fail "no signals counted"
p99=$(query 'histogram_quantile(0.99, sum by (le) (pqa_event_processing_duration_seconds_bucket{job="pqa-scorer"}))')
python3 -c "import sys; v=float('$p99'); sys.exit(0 if 0 < v < 1 else 1)" || fail "p99 processing time $p99"
committed=$(query 'pqa_transactions_total{job="pqa-scorer",outcome="committed"}')
[ "$committed" -gt 0 ] || fail "no committed transactions"
# The state starts empty, so the first read of each new account, user and identity is
# answered by the new-key filter (counted when the partition gauges refresh, every 5 s): more
# than the 60 accounts alone, and than the 2 metadata reads per partition of the restore.
filtered() {
  local n
  n=$(query 'sum(pqa_state_reads_total{job="pqa-scorer",answered_by="new_key_filter"})')
  [ -n "$n" ] && [ "$n" -gt 64 ]
}
wait_for 30 "state reads answered by the new-key filter" filtered
# Every alert rule evaluates without error against the real series.
rules_ok() {
  curl -s "http://127.0.0.1:$prom_port/api/v1/rules" | python3 -c '
import json, sys
rules = [r for g in json.load(sys.stdin)["data"]["groups"] for r in g["rules"]]
bad = [r["name"] for r in rules if r.get("health") != "ok"]
sys.exit(0 if rules and not bad else 1)'
}
wait_for 30 "every alert rule to evaluate healthily" rules_ok
# A graceful stop of the scraped service exits 0 (the cleanup's own stop ignores codes).
kill -TERM "$scorer_pid"
code=0
wait "$scorer_pid" || code=$?
[ "$code" -eq 0 ] || fail "the scorer exited $code after SIGTERM"
echo "prometheus: $total events, $dead dead letters, $signals signals, p99 processing ${p99}s, rules healthy, clean stop"
