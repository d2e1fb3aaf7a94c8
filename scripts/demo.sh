#!/usr/bin/env bash
# The scorer's main job on an embedded default, with no external service: builds the scorer,
# generates a realistic synthetic Segment stream (bench/gen_events.cpp: the seeds' account
# archetypes, Zipf activity) and scores it with `pqa-scorer replay` on RocksDB state in a
# temporary directory. Prints signals as they would go to the CRM, then a summary.
# Usage: scripts/demo.sh [EVENTS] [ACCOUNTS]
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-300000}
accounts=${2:-2000}
scripts/install-deps.sh
scripts/build.sh release >&2
bin=build/release
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "demo: generating $events events for $accounts accounts" >&2
"$bin/bench/pqa-gen" --events "$events" --accounts "$accounts" --poison-rate 0.001 >"$work/events.jsonl"
echo "demo: scoring (bad lines are reported and skipped)" >&2
"$bin/services/scorer/pqa-scorer" replay --config config/scorer.yaml --input "$work/events.jsonl" \
  --signals "$work/signals.jsonl" --scores "$work/scores.jsonl" --as-of 2026-03-15T00:00:00Z \
  2> >(grep -v '^line ' >&2)
echo "demo: the first accounts to become qualified or hot (threshold_crossed signals):"
grep '"kind":"threshold_crossed"' "$work/signals.jsonl" | grep '"direction":"up"' |
  grep -E '"band":"(qualified|hot)"' | head -n 10 || true
echo >&2
echo "demo: signals by kind:" >&2
grep -o '"kind":"[a-z_]*"' "$work/signals.jsonl" | sort | uniq -c >&2
echo "demo: accounts by band at the end:" >&2
grep -o '"band":"[a-z]*"' "$work/scores.jsonl" | sort | uniq -c >&2
echo "demo: top accounts:" >&2
python3 - "$work/scores.jsonl" <<'PY' >&2
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
rows.sort(key=lambda r: -r["score"])
for r in rows[:5]:
    drivers = ", ".join(f'{d["name"]} {d["points"]}' for d in r["drivers"])
    print(f'  {r["account_id"]:<12} {r["score"]:6.2f} {r["band"]:<9} {r["routing"]:<11} {drivers}')
PY
