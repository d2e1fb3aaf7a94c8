#!/usr/bin/env bash
# The replay command line: exit codes, error reporting and the closing summary.
# Usage: cli_test.sh PQA_SCORER CONFIG
set -u
bin=$1
config=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
failures=0
check() {  # check DESCRIPTION COMMAND...
  local what=$1
  shift
  if "$@"; then echo "ok   - $what"; else echo "FAIL - $what"; failures=$((failures + 1)); fi
}

cat >"$dir/in.jsonl" <<'JSON'
{"type":"group","userId":"u1","groupId":"acme","timestamp":"2026-03-02T09:00:00Z","traits":{"seats":3}}
not json
{"type":"track","userId":"u1","event":"Report Created","timestamp":"2026-03-02T09:01:00Z"}

{"type":"track","userId":"u1","timestamp":"2026-03-02T09:02:00Z"}
{"type":"track","userId":"u2","event":"Report Created","timestamp":"2026-03-02T09:03:00Z"}
JSON

"$bin" replay --config "$config" --input "$dir/in.jsonl" --signals "$dir/s" --scores "$dir/c" \
  2>"$dir/err"
code=$?
check "bad lines do not fail the run" test "$code" -eq 0
check "line 2 reported with its reason" grep -q '^line 2: malformed_json' "$dir/err"
check "line 5 reported with its reason" grep -q "^line 5: missing_event_name: field 'event' is required" "$dir/err"
check "line 6 reported as unresolved" grep -q '^line 6: unresolved_account' "$dir/err"
check "summary counts the rejections" grep -q 'replay: 6 lines, 2 processed (0 ignored), 3 rejected' "$dir/err"
check "summary by reason" grep -q 'replay: rejected malformed_json: 1' "$dir/err"
check "one score line" test "$(wc -l <"$dir/c")" -eq 1

"$bin" replay --config "$config" --input "$dir/in.jsonl" --signals "$dir/s" --scores "$dir/c" \
  --strict 2>"$dir/err"
check "--strict exits 1 on rejected lines" test $? -eq 1
# ... having finished the run: a crash (or a sanitizer's abort, also exit 1) would not say so.
check "--strict still writes the summary" grep -q 'replay: 6 lines, 2 processed (0 ignored), 3 rejected' "$dir/err"
check "--strict: no sanitizer report" bash -c "! grep -q 'Sanitizer' '$dir/err'"

printf '%s\n' '{"type":"identify","userId":"u1","timestamp":"2026-03-02T09:00:00Z","traits":{"department":"ops"}}' \
  | cat "$dir/in.jsonl" - | "$bin" replay --config "$config" --input - --signals - --scores "$dir/c" \
  >"$dir/stdout" 2>/dev/null
check "stdin in, signals to stdout" grep -q '"kind":"breadth_expansion"' "$dir/stdout"

printf 'model:\n  bands: {hot: abc}\n' >"$dir/bad.yaml"
"$bin" replay --config "$dir/bad.yaml" --input "$dir/in.jsonl" --signals "$dir/s" \
  --scores "$dir/c" 2>"$dir/err"
check "config error exits 2" test $? -eq 2
check "config error names the key" grep -q "config error: model.bands.hot: must be a number, got 'abc'" "$dir/err"

"$bin" replay --config "$(dirname "$config")" --input "$dir/in.jsonl" --signals "$dir/s" \
  --scores "$dir/c" 2>"$dir/err"
check "a directory as --config exits 2" test $? -eq 2

# The state directory is made before any broker is asked: a place it cannot be is a config error.
# (any free admin port; a broker address that is never reached)
printf 'admin: {bind_address: 127.0.0.1, port: 0}\nkafka: {bootstrap_servers: "127.0.0.1:1"}\n' \
  >"$dir/run.yaml"
"$bin" run --config "$dir/run.yaml" --state-dir /proc/pqa-state 2>"$dir/err"
check "an impossible state dir exits 2" test $? -eq 2
check "an impossible state dir names the key" grep -q '"key":"service.state_dir"' "$dir/err"

"$bin" replay --config "$config" --input "$dir/in.jsonl" --signals "$dir/s" --scores "$dir/c" \
  --as-of yesterday 2>"$dir/err"
check "bad --as-of exits 2" test $? -eq 2

# A byte order mark before the first line is not part of it; a line that is 1 MiB of blanks
# and then an event is an overlong line (reported and counted), not a blank one skipped.
{
  printf '\xEF\xBB\xBF%s\n' '{"type":"group","userId":"u1","groupId":"acme","timestamp":"2026-03-02T09:00:00Z"}'
  head -c 1048576 /dev/zero | tr '\0' ' '
  printf '%s\n' '{"type":"track","userId":"u1","event":"Report Created","timestamp":"2026-03-02T09:01:00Z"}'
  printf '%s\n' '{"type":"x\nline 1: forged","userId":"u1","timestamp":"2026-03-02T09:02:00Z"}'
} >"$dir/odd.jsonl"
"$bin" replay --config "$config" --input "$dir/odd.jsonl" --signals "$dir/s" --scores "$dir/c" \
  2>"$dir/err"
check "a byte order mark on line 1 is ignored" bash -c "! grep -q '^line 1' '$dir/err'"
check "blanks then an event: oversized" grep -q '^line 2: oversized' "$dir/err"
check "input in an error cannot forge a line" bash -c "! grep -q '^line 1: forged' '$dir/err' && grep -q 'x\\\\x0aline 1: forged' '$dir/err'"
check "both counted" grep -q 'replay: 3 lines, 1 processed (0 ignored), 2 rejected' "$dir/err"

# Usage errors exit 2 as documented (CLI11's own codes are 100 and up); --help exits 0.
"$bin" replay --config "$config" --input "$dir/in.jsonl" --signals "$dir/s" 2>"$dir/err"
check "a missing option exits 2" test $? -eq 2
check "a missing option is named" grep -q -- "--scores" "$dir/err"
"$bin" replay --config "$config" --input "$dir/in.jsonl" --signals "$dir/s" --scores "$dir/c" \
  --no-such-flag 2>"$dir/err"
check "an unknown flag exits 2" test $? -eq 2
"$bin" demo --events 0 2>"$dir/err"
check "an option out of range exits 2" test $? -eq 2
"$bin" 2>"$dir/err"
check "no subcommand exits 2" test $? -eq 2
"$bin" replay --help >"$dir/stdout" 2>&1
check "--help exits 0" test $? -eq 0

"$bin" replay --config "$config" --input "$dir/missing.jsonl" --signals "$dir/s" \
  --scores "$dir/c" 2>"$dir/err"
check "unreadable input exits 3" test $? -eq 3
check "unreadable input is named" grep -q "missing.jsonl" "$dir/err"
echo kept >"$dir/previous-signals"
"$bin" replay --config "$config" --input "$dir/missing.jsonl" --signals "$dir/previous-signals" \
  --scores "$dir/c" 2>/dev/null
check "unreadable input leaves the previous output alone" grep -qx kept "$dir/previous-signals"
cp "$dir/previous-signals" "$dir/same.jsonl"
"$bin" replay --config "$config" --input "$dir/same.jsonl" --signals "$dir/same.jsonl" \
  --scores "$dir/c" 2>"$dir/err"
check "signals to the input file exits 2" test $? -eq 2
check "the input file is not overwritten" grep -qx kept "$dir/same.jsonl"

# The example and the two signal lines quoted in README.md.
"$bin" replay --config "$config" --input "$(dirname "$config")/../docs/examples/worked-example.jsonl" \
  --signals "$dir/we" --scores "$dir/c" --as-of 2026-04-01T00:00:00Z 2>/dev/null
readme="$(dirname "$config")/../README.md"
for id in 0a9b7e2a83e9a946bdfb9e7fdcf64192 8b299947fd19a84eeecd062a44e2ff98; do
  check "README signal $id is what replay emits" \
    grep -qxF "$(grep -o "{\"signal_id\":\"$id\".*}" "$readme")" "$dir/we"
done
check "the worked example gives nine signals" test "$(wc -l <"$dir/we")" -eq 9

echo "cli_test: $failures failure(s)"
test "$failures" -eq 0
