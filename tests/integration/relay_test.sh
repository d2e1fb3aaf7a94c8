#!/usr/bin/env bash
# Runs one scenario of relay_test.py with the independent Standard Webhooks verifier (PyPI
# `standardwebhooks`) installed into the work dir.
# Usage: relay_test.sh SCORER LOAD KAFKA_DIR WORK_DIR SCENARIO
set -euo pipefail
scorer=$1 load=$2 kafka_dir=$3 work=$4 scenario=$5
rm -rf "$work" && mkdir -p "$work"
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
  --target "$work/py" standardwebhooks==1.1.0
PYTHONPATH="$work/py" python3 "$(dirname "$0")/relay_test.py" "$scorer" "$load" "$kafka_dir" \
  "$work/run" "$scenario"
[ -n "${PQA_TEST_KEEP:-}" ] || rm -rf "$work"
