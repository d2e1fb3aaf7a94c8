#!/usr/bin/env bash
# Our Standard Webhooks signatures, verified by an independent implementation: the
# `standardwebhooks` package from PyPI (installed into the work dir). Each random case must
# verify with every one of its secrets, and must fail once its body is altered.
# Usage: webhook_signature_test.sh CASES_BIN WORK_DIR
set -euo pipefail
cases_bin=$1 work=$2
rm -rf "$work" && mkdir -p "$work"
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
  --target "$work/py" standardwebhooks==1.1.0
"$cases_bin" 200 "$(date +%s)" >"$work/cases.jsonl"
PYTHONPATH="$work/py" python3 - "$work/cases.jsonl" <<'PY'
import json, sys
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

verified = refused = 0
for line in open(sys.argv[1]):
    case = json.loads(line)
    headers = {"webhook-id": case["id"], "webhook-timestamp": str(case["timestamp"]),
               "webhook-signature": case["signature"]}
    for secret in case["secrets"]:
        Webhook(secret).verify(case["body"], headers)  # raises on a bad signature
        verified += 1
        try:
            Webhook(secret).verify(case["body"] + " ", headers)
        except WebhookVerificationError:
            refused += 1
        else:
            sys.exit("an altered body verified: " + line)
print(f"standardwebhooks verified {verified} signatures and refused {refused} altered bodies")
assert verified >= 200 and refused == verified
PY
