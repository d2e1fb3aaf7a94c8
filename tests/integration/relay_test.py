#!/usr/bin/env python3
"""The CRM relay end to end: a real Kafka broker, `pqa-scorer relay` as a process, and
receivers over loopback HTTP and HTTPS (a CA made here) that verify every signature with the
independent `standardwebhooks` package from PyPI.

Usage: relay_test.py SCORER LOAD KAFKA_DIR WORK_DIR SCENARIO
Scenarios:
  faults      500s, 429 with Retry-After, timeouts, closed connections, an endpoint down for a
              while and the relay killed (SIGKILL) midway: every signal arrives, in order per
              account, duplicates only as the same webhook-id with the same body.
  crm         HubSpot and Salesforce presets: batch sizes, coalescing to the newest value,
              routes, the rate limit, headers from the environment.
  dead_letter 500 until max_attempts, 410 (endpoint disabled), 400 (not retried), an
              untrusted certificate, records that are not signals: each reaches the dead-letter
              topic with its reason; after a restart nothing is dead-lettered twice.
"""
import atexit
import http.server
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

SCORER, LOAD, KAFKA_DIR, WORK, SCENARIO = sys.argv[1:6]
BOOTSTRAP = open(os.path.join(KAFKA_DIR, "bootstrap")).read().strip()
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
NAME = f"pqa-relay-{SCENARIO}-{os.getpid()}"


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    for log in sorted(os.listdir(WORK)):
        if log.endswith(".log"):
            print(f"--- tail of {log}", file=sys.stderr)
            with open(os.path.join(WORK, log)) as f:
                print("".join(f.readlines()[-15:]), file=sys.stderr)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(seconds, what, predicate, explain=lambda: ""):
    deadline = time.time() + seconds
    while not predicate():
        if time.time() > deadline:
            fail(f"timed out after {seconds} s waiting for {what} {explain()}")
        time.sleep(0.2)


def run(*args, **kwargs):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kwargs).stdout


# --- Certificates -----------------------------------------------------------------------------

def make_ca(name):
    """A CA and a server certificate for localhost/127.0.0.1 signed by it (openssl CLI)."""
    d = os.path.join(WORK, name)
    os.makedirs(d)
    p = lambda f: os.path.join(d, f)
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        "-keyout", p("ca.key"), "-out", p("ca.pem"), "-subj", f"/CN={name} test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", p("server.key"),
        "-out", p("server.csr"), "-subj", "/CN=localhost")
    with open(p("ext.cnf"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("openssl", "x509", "-req", "-in", p("server.csr"), "-CA", p("ca.pem"), "-CAkey",
        p("ca.key"), "-CAcreateserial", "-days", "1", "-out", p("server.pem"),
        "-extfile", p("ext.cnf"))
    return {"ca": p("ca.pem"), "cert": p("server.pem"), "key": p("server.key")}


# --- Receiver ---------------------------------------------------------------------------------

class Receiver:
    """An HTTP(S) server on a loopback port. `plan(path, n)` decides the n-th request's answer:
    ("ok",), ("ok", "early_hints") (a 103 before the 200), ("ok", "big_body") (a 200 with a
    100 KiB body), ("ok", "slow", seconds) (recorded on arrival, answered later),
    ("status", code, {headers}), ("hang", seconds) or ("close",). Requests
    answered 2xx are recorded with their headers and body; signatures are verified when a
    secret is set."""

    def __init__(self, tls=None, secret=None):
        self.port = free_port()
        self.tls, self.secret = tls, secret
        self.lock = threading.Lock()
        self.requests = 0
        self.delivered = []  # dicts: time, path, method, headers, body
        self.bad_signatures = []
        self.arrivals = {}  # request number -> arrival time, whatever the answer
        self.plan = lambda path, n: ("ok",)
        self.server = None
        self.start()

    def start(self):
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def answer(self, code, headers=None, body=b"{}"):
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (ConnectionError, ssl.SSLError):
                    self.close_connection = True  # the relay stops reading a body too long

            def handle_any(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.requests += 1
                    n = receiver.requests
                action = receiver.plan(self.path, n)
                with receiver.lock:
                    receiver.arrivals[n] = time.time()
                if action[0] == "close":
                    self.close_connection = True
                    return
                if action[0] == "hang":
                    time.sleep(action[1])
                    self.close_connection = True
                    return
                if action[0] == "status":
                    return self.answer(action[1], action[2] if len(action) > 2 else None,
                                       b'{"error":"injected"}')
                headers = {k.lower(): v for k, v in self.headers.items()}
                if receiver.secret:
                    try:
                        Webhook(receiver.secret).verify(body, headers)
                    except WebhookVerificationError as e:
                        receiver.bad_signatures.append(f"{headers.get('webhook-id')}: {e}")
                with receiver.lock:
                    receiver.delivered.append({"time": time.time(), "path": self.path,
                                               "method": self.command, "headers": headers,
                                               "body": body.decode()})
                mode = action[1] if len(action) > 1 else None
                if mode == "slow":
                    time.sleep(action[2])
                if mode == "early_hints":
                    self.send_response_only(103)
                    self.send_header("Link", "</style.css>; rel=preload")
                    self.end_headers()
                self.answer(200, body=b'{"echo":"' + b"x" * 100_000 + b'"}'
                            if mode == "big_body" else b"{}")

            do_POST = do_PATCH = do_PUT = handle_any

        class Server(http.server.ThreadingHTTPServer):
            allow_reuse_address = True
            daemon_threads = True

        self.server = Server(("127.0.0.1", self.port), Handler)
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.tls["cert"], self.tls["key"])
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def url(self, path):
        scheme = "https" if self.tls else "http"
        host = "localhost" if self.tls else "127.0.0.1"
        return f"{scheme}://{host}:{self.port}{path}"

    def snapshot(self):
        with self.lock:
            return list(self.delivered)


# --- Kafka and the relay --------------------------------------------------------------------

def create_topic(topic, partitions):
    empty = os.path.join(WORK, "empty.jsonl")
    open(empty, "w").close()
    run(LOAD, "--bootstrap", BOOTSTRAP, "--topic", topic, "--input", empty,
        "--create-partitions", str(partitions), "--config",
        os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../config/scorer.yaml"))


def produce(topic, records):
    """records: (key, value) pairs, produced in order (kcat, keyed: one partition per key)."""
    data = "".join(f"{k}\t{v}\n" for k, v in records)
    subprocess.run(["kcat", "-P", "-b", BOOTSTRAP, "-t", topic, "-K", "\t", "-z", "none"],
                   input=data, text=True, check=True)


def consume_all(topic):
    out = subprocess.run(["kcat", "-C", "-b", BOOTSTRAP, "-t", topic, "-o", "beginning", "-e",
                          "-J", "-q"], capture_output=True, text=True, check=True).stdout
    records = []
    for line in out.splitlines():
        r = json.loads(line)
        h = r.get("headers") or []
        r["headers"] = dict(zip(h[0::2], h[1::2]))
        records.append(r)
    return records


def signal_json(signal_id, account, kind="threshold_crossed", band="qualified", score=65.0):
    s = {"signal_id": signal_id, "kind": kind, "account_id": account, "score": score,
         "band": band, "event_time": "2026-11-23T10:00:00.000Z", "model_version": "test"}
    if kind == "threshold_crossed":
        s.update(direction="up", previous_band="nurture", routing="pls_assist",
                 components={"breadth": 0.5, "depth": 0.4, "fabric": 0.3, "fit": 0.7},
                 drivers=[{"name": "breadth", "points": 20.5}, {"name": "fabric", "points": 11}])
    else:
        s.update(pattern="healthy_expansion", routing="pls_assist", drivers=[])
    s["risk_flags"] = []
    return json.dumps(s, separators=(",", ":"))


RUNNING = []


@atexit.register
def kill_leftovers():
    for proc in RUNNING:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class Relay:
    def __init__(self, config_text, tag):
        self.config = os.path.join(WORK, f"relay-{tag}.yaml")
        self.admin_port = free_port()
        with open(self.config, "w") as f:
            f.write(config_text.replace("ADMIN_PORT", str(self.admin_port)))
        self.runs = 0
        self.tag = tag
        self.proc = None

    def start(self, env=None):
        self.runs += 1
        self.log = open(os.path.join(WORK, f"relay-{self.tag}-{self.runs}.log"), "w")
        self.proc = subprocess.Popen([SCORER, "relay", "--config", self.config],
                                     stderr=self.log, env={**os.environ, **(env or {})})
        RUNNING.append(self.proc)
        wait_for(60, "the relay's partition assignment",
                 lambda: self.metric("pqa_relay_assigned_partitions") > 0)

    def metrics_text(self):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/metrics",
                                        timeout=2) as r:
                return r.read().decode()
        except OSError:
            return ""

    def metric(self, name, must_exist=False, **labels):
        """Sum of the metric's samples carrying `labels`. With must_exist, None when no such
        sample is exposed (or the relay does not answer), so that "== 0" cannot pass then."""
        total, found = 0.0, False
        for line in self.metrics_text().splitlines():
            if not line.startswith(name) or line[len(name)] not in " {":
                continue
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
                found = True
        return None if must_exist and not found else total

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=60)
        check(code == 0, f"the relay exited with {code} after SIGTERM")


def produce_signals(accounts, per_account):
    """Produces `per_account` threshold crossings for each of `accounts` accounts, the
    accounts interleaved; returns {account: [signal ids in produced order]}."""
    expected, records = {}, []
    for i in range(per_account):
        for a in range(accounts):
            account = f"acct-{a:02d}"
            sid = f"sig-{account}-{i:03d}"
            expected.setdefault(account, []).append(sid)
            records.append((account, signal_json(sid, account, score=40 + i)))
    produce(f"{NAME}-signals", records)
    return expected


def delivered_ids(receiver):
    return {json.loads(d["body"])["data"]["signal_id"] for d in receiver.snapshot()}


def first_arrivals(deliveries):
    """Checks each Standard Webhooks delivery (webhook-id is the signal id; a repeat is
    identical to the first); returns {signal id: envelope} and {account: [signal ids in the
    order they first arrived]}."""
    by_id, order = {}, {}
    for d in deliveries:
        envelope = json.loads(d["body"])
        sid = envelope["data"]["signal_id"]
        check(d["headers"]["webhook-id"] == sid, "webhook-id is not the signal id")
        check(envelope["type"] == "pqa.threshold_crossed", f"envelope type {envelope['type']}")
        if sid in by_id:
            check(by_id[sid] == envelope, f"{sid} delivered twice with different bodies")
            continue
        by_id[sid] = envelope
        order.setdefault(envelope["data"]["account_id"], []).append(sid)
    return by_id, order


def kafka_section(group):
    return f"""kafka:
  bootstrap_servers: "{BOOTSTRAP}"
  topics: {{ signals: {NAME}-signals, create: true, replication_factor: 1 }}
admin: {{ bind_address: 127.0.0.1, port: ADMIN_PORT }}
relay:
  group_id: {group}
  dead_letter_topic: {NAME}-dlq
  commit_interval_ms: 200
  jitter_seed: 42
"""


# --- Scenarios --------------------------------------------------------------------------------

def scenario_faults():
    tls = make_ca("faults")
    receiver = Receiver(tls=tls, secret=SECRET)
    accounts, per_account = 20, 15

    def plan(path, n):
        if n <= 8:
            return ("status", 500)
        if n <= 12:
            return ("status", 429, {"Retry-After": "1"})
        if n <= 15:
            return ("hang", 2.5)
        if n <= 18:
            return ("close",)
        if n <= 20:
            return ("ok", "early_hints")
        if n <= 22:
            return ("ok", "big_body")
        return ("ok",)
    receiver.plan = plan
    create_topic(f"{NAME}-signals", 3)
    # A small bound on pending signals: the relay pauses while the endpoint fails, and resumes.
    relay = Relay(kafka_section(NAME) + f"""  max_pending_signals: 100
  endpoints:
    - name: crm-hooks
      url: "{receiver.url('/hooks/pqa')}"
      secrets: "${{PQA_TEST_WEBHOOK_SECRET}}"
      timeout_ms: 1000
      max_in_flight: 4
      retry: {{ schedule_ms: [200, 400, 800], max_attempts: 1000 }}
      breaker: {{ failure_threshold: 5, open_ms: 500 }}
      tls: {{ ca_file: "{tls['ca']}" }}
""", "faults")
    relay.start(env={"PQA_TEST_WEBHOOK_SECRET": SECRET})
    expected = produce_signals(accounts, per_account)
    all_ids = {sid for ids in expected.values() for sid in ids}

    # The faults come first (requests 1-18); then the endpoint goes down for 3 s.
    wait_for(60, "the injected faults", lambda: receiver.requests >= 18)
    receiver.stop()
    time.sleep(3)
    receiver.start()
    wait_for(120, "half of the signals",
             lambda: len(delivered_ids(receiver)) >= len(all_ids) // 2)
    receiver.stop()  # nothing more is delivered until the relay has been killed
    seen = {o: relay.metric("pqa_relay_delivery_attempts_total", outcome=o)
            for o in ("slow_down", "retryable_error", "transport_error", "success")}
    retries = relay.metric("pqa_relay_retries_total")
    # Retry-After: 1 on requests 9-12 pauses the endpoint: request 13 comes a second later.
    gap = receiver.arrivals[13] - receiver.arrivals[12]
    check(gap >= 0.9, f"request 13 came {gap:.3f} s after a 429 with Retry-After: 1")
    first_log = open(relay.log.name).read()
    check('"consumption paused","reason":"max_pending_signals reached"' in first_log and
          '"consumption resumed"' in first_log, "the relay did not pause at max_pending_signals")
    delivered_before_kill = len(delivered_ids(receiver))
    check(delivered_before_kill < len(all_ids),
          f"every signal was delivered before the kill ({delivered_before_kill})")
    relay.kill()  # mid-way, uncommitted deliveries are delivered again
    receiver.start()
    relay.start(env={"PQA_TEST_WEBHOOK_SECRET": SECRET})
    wait_for(120, "every signal", lambda: delivered_ids(receiver) >= all_ids)
    relay.stop()

    deliveries = receiver.snapshot()
    check(not receiver.bad_signatures, f"signatures refused: {receiver.bad_signatures[:3]}")
    by_id, order = first_arrivals(deliveries)
    check(set(by_id) == all_ids, f"missing: {sorted(all_ids - set(by_id))[:5]}")
    # Requests 19-22 were answered 2xx after a 103, or with a body over the relay's limit:
    # successes, neither retried nor misread as the next request's answer.
    logs = "".join(open(os.path.join(WORK, f"relay-faults-{run}.log")).read()
                   for run in (1, 2))
    for symptom in ("HTTP 103", "body limit"):
        check(symptom not in logs, f"the relay logged a failure with '{symptom}'")
    for account, ids in expected.items():
        check(order[account] == ids, f"{account} out of order: {order[account]}")
    duplicates = len(deliveries) - len(by_id)
    for outcome, n in seen.items():
        check(n > 0, f"no delivery attempt with outcome {outcome} was counted")
    check(retries > 0, "no retry was counted")
    print(f"faults: {len(all_ids)} signals over {accounts} accounts delivered in order, "
          f"{duplicates} duplicate deliveries (same webhook-id and body) after SIGKILL, "
          f"{len(deliveries)} 2xx in all; attempts before the kill: {seen}, retries {retries:g}")


def scenario_crm():
    receiver = Receiver()
    hubspot_path = "/crm/v3/objects/companies/batch/update"
    salesforce_path = "/services/data/v60.0/composite/sobjects/Account/PQA_Account_Id__c"
    outage_until = [None]

    def plan(path, n):
        if outage_until[0] is None or time.time() < outage_until[0]:
            return ("status", 503)
        return ("ok",)
    receiver.plan = plan
    create_topic(f"{NAME}-signals", 2)
    relay = Relay(kafka_section(NAME) + f"""  endpoints:
    - name: hubspot
      url: "{receiver.url(hubspot_path)}"
      format: hubspot
      template: {{ max_records: 20 }}  # small batches, so that the rate limit shows
      headers: {{ Authorization: "Bearer ${{PQA_TEST_HUBSPOT_TOKEN}}" }}
      routes: [{{ kinds: [threshold_crossed] }}]
      rate_limit: {{ requests: 5, per_ms: 1000 }}
      max_in_flight: 2
      retry: {{ schedule_ms: [300], max_attempts: 1000 }}
      breaker: {{ failure_threshold: 1000 }}
    - name: salesforce
      url: "{receiver.url(salesforce_path)}"
      format: salesforce
      retry: {{ schedule_ms: [300], max_attempts: 1000 }}
      breaker: {{ failure_threshold: 1000 }}
""", "crm")
    relay.start(env={"PQA_TEST_HUBSPOT_TOKEN": "pat-test-123"})
    accounts, per_account = 300, 7
    records, last = [], {}
    kinds = {}
    for i in range(per_account):
        for a in range(accounts):
            account = f"co-{a:03d}"
            sid = f"sig-{account}-{i:02d}"
            kind = "seat_expansion" if (a + i) % 5 == 0 else "threshold_crossed"
            kinds[sid] = kind
            score = round(30 + i * 5 + (a % 100) / 100, 2)  # CRM fields carry 2 decimals
            records.append((account, signal_json(sid, account, kind=kind, score=score)))
            last.setdefault(account, {})["salesforce"] = (sid, score)
            if kind == "threshold_crossed":
                last[account]["hubspot"] = (sid, score)
    outage_until[0] = time.time() + 1e9
    produce(f"{NAME}-signals", records)
    wait_for(60, "every signal to be read",
             lambda: relay.metric("pqa_relay_signals_consumed_total") >= len(records))
    time.sleep(2)  # updates queue (and coalesce) behind the failing endpoint
    outage_until[0] = time.time()

    def received():
        latest = {"hubspot": {}, "salesforce": {}}
        for d in receiver.snapshot():
            body = json.loads(d["body"])
            if d["path"] == hubspot_path:
                for r in body["inputs"]:
                    latest["hubspot"][r["id"]] = (r["properties"]["pqa_signal_id"],
                                                  r["properties"]["pqa_score"])
            else:
                for r in body["records"]:
                    latest["salesforce"][r["PQA_Account_Id__c"]] = (r["PQA_Signal_Id__c"],
                                                                    r["PQA_Score__c"])
        return latest
    expected = {e: {a: v[e] for a, v in last.items() if e in v} for e in ("hubspot", "salesforce")}
    def differences():
        got = received()
        return {e: [(a, got[e].get(a), v) for a, v in expected[e].items() if got[e].get(a) != v][:3]
                for e in expected}
    wait_for(120, "the newest value of every account at both CRMs",
             lambda: received() == expected,
             lambda: f"(first differences, account/received/expected: {differences()})")
    relay.stop()

    deliveries = receiver.snapshot()
    seq = {}
    totals = {"hubspot": 0, "salesforce": 0}
    hubspot_times = []
    for d in deliveries:
        body = json.loads(d["body"])
        if d["path"] == hubspot_path:
            check(d["method"] == "POST", "HubSpot batch update is a POST")
            check(d["headers"].get("authorization") == "Bearer pat-test-123",
                  "the Authorization header from the environment is missing")
            rows = [(r["id"], r["properties"]["pqa_signal_id"]) for r in body["inputs"]]
            check(len(rows) <= 20, f"a HubSpot batch of {len(rows)} records (max_records 20)")
            hubspot_times.append(d["time"])
            endpoint = "hubspot"
        else:
            check(d["method"] == "PATCH", "Salesforce collections upsert is a PATCH")
            check(body["allOrNone"] is False, "allOrNone")
            rows = [(r["PQA_Account_Id__c"], r["PQA_Signal_Id__c"]) for r in body["records"]]
            check(len(rows) <= 200, f"a Salesforce batch of {len(rows)} records")
            endpoint = "salesforce"
        check(len({a for a, _ in rows}) == len(rows), "an account twice in one batch")
        totals[endpoint] += len(rows)
        for account, sid in rows:
            if endpoint == "hubspot":
                check(kinds[sid] == "threshold_crossed", f"{sid} does not match HubSpot's route")
            n = int(sid.rsplit("-", 1)[1])
            prev = seq.get((endpoint, account), -1)
            check(n > prev, f"{endpoint} got {sid} after a newer update of {account}")
            seq[(endpoint, account)] = n
    hubspot_signals = sum(1 for k in kinds.values() if k == "threshold_crossed")
    check(totals["hubspot"] < hubspot_signals, "HubSpot updates did not coalesce")
    check(totals["salesforce"] < len(records), "Salesforce updates did not coalesce")
    # A token bucket of 5 refilled at 5/s allows at most 10 requests in any second.
    hubspot_times.sort()
    busiest = max(sum(1 for t in hubspot_times if s <= t < s + 1.0) for s in hubspot_times)
    check(busiest <= 10, f"{busiest} HubSpot requests within one second (limit 5 per s)")
    print(f"crm: {len(records)} signals for {accounts} accounts; HubSpot got "
          f"{totals['hubspot']} records (of {hubspot_signals} matching signals) in "
          f"{len(hubspot_times)} requests, at most {busiest} in a second; Salesforce got "
          f"{totals['salesforce']} records in {len(deliveries) - len(hubspot_times)} requests; "
          f"the newest value of every account arrived at both, never an older after a newer")


def scenario_dead_letter():
    receiver = Receiver()
    untrusted = Receiver(tls=make_ca("untrusted"))

    def plan(path, n):
        return {"/always500": ("status", 500), "/gone": ("status", 410),
                "/bad": ("status", 400)}.get(path, ("ok",))
    receiver.plan = plan
    create_topic(f"{NAME}-signals", 2)
    endpoint = lambda name, url, band: f"""    - name: {name}
      url: "{url}"
      allow_unsigned: true
      routes: [{{ bands: [{band}] }}]
      retry: {{ schedule_ms: [100], max_attempts: 3 }}
      breaker: {{ failure_threshold: 1000 }}
"""
    # A small producer limit, so that a dead letter too large to produce shows its cut.
    kafka = kafka_section(NAME).replace(
        "  topics:", "  producer_properties: { message.max.bytes: 100000 }\n  topics:")
    relay = Relay(kafka + "  endpoints:\n" +
                  endpoint("always500", receiver.url("/always500"), "cold") +
                  endpoint("gone", receiver.url("/gone"), "nurture") +
                  endpoint("bad", receiver.url("/bad"), "qualified") +
                  endpoint("untrusted", untrusted.url("/x"), "hot"), "dead-letter")
    relay.start()
    records = []
    for band in ("cold", "nurture", "qualified", "hot"):
        for i in range(5):
            account = f"{band}-{i}"
            records.append((account, signal_json(f"sig-{band}-{i}", account, band=band)))
    # broken-4: a key larger than the producer's limit (a dead letter's key is the record's).
    records += [("broken-1", "{not json"), ("broken-2", '{"kind":"threshold_crossed"}'),
                ("broken-3", "x" * 300000), ("h" * 150000, "{not json either")]
    produce(f"{NAME}-signals", records)
    dlq = f"{NAME}-dlq"
    wait_for(90, "every record in the dead-letter topic", lambda: len(consume_all(dlq)) >= 24)
    letters = consume_all(dlq)
    check(len(letters) == 24, f"{len(letters)} dead letters, expected 24")
    by_key = {r["key"]: r for r in letters}
    expect = {"cold": ("always500", "HTTP 500: {\"error\":\"injected\"} (after 3 attempts)"),
              "nurture": ("gone", "endpoint disabled: HTTP 410"),
              "qualified": ("bad", "HTTP 400: {\"error\":\"injected\"} (not retried: the "
                                   "request was refused)"),
              "hot": ("untrusted", "certificate verify failed")}
    for band, (name, error) in expect.items():
        for i in range(5):
            r = by_key[f"{band}-{i}"]
            check(r["headers"]["pqa-relay-endpoint"] == name, f"{band}-{i}: endpoint {r['headers']}")
            check(error in r["headers"]["pqa-relay-error"],
                  f"{band}-{i}: error '{r['headers']['pqa-relay-error']}', expected '{error}'")
            check(json.loads(r["payload"])["signal_id"] == f"sig-{band}-{i}", "payload kept")
    check(by_key["cold-0"]["headers"]["pqa-relay-attempts"] == "3", "attempts header")
    check(by_key["broken-1"]["headers"]["pqa-relay-error"].startswith("invalid signal: not JSON"),
          f"broken-1: {by_key['broken-1']['headers']}")
    check(by_key["broken-2"]["headers"]["pqa-relay-error"] ==
          "invalid signal: signal_id is missing or not a string", "broken-2 reason")
    check(by_key["broken-1"]["payload"] == "{not json", "the invalid record is kept whole")
    # Over the producer's limit: cut to fit (not refused for ever), its size in a header.
    big = by_key["broken-3"]
    check(big["headers"].get("pqa-relay-truncated-from-bytes") == "300000",
          f"broken-3: {big['headers']}")
    check(0 < len(big["payload"]) <= 100000 and big["payload"] == "x" * len(big["payload"]),
          f"broken-3: a payload of {len(big['payload'])} bytes")
    # A key over the limit: cut to 1 KiB, its size in a header (it was refused for ever).
    long_key = by_key.get("h" * 1024)
    check(long_key is not None and
          long_key["headers"].get("pqa-relay-key-truncated-from-bytes") == "150000",
          f"broken-4: {long_key and long_key['headers']}")
    check(relay.metric("pqa_relay_endpoint_disabled", endpoint="gone") == 1, "gone not disabled")
    with urllib.request.urlopen(f"http://127.0.0.1:{relay.admin_port}/readyz", timeout=2) as r:
        check(r.status == 200, f"/readyz answered {r.status}")
    check(relay.metric("pqa_relay_signals_invalid_total") == 4, "invalid signals not counted")
    check(relay.metric("pqa_relay_dead_letters_total") == 24, "dead letters not counted")
    check(not receiver.delivered and not untrusted.delivered, "a failing endpoint got a 2xx")
    exposition = os.path.join(WORK, "metrics.txt")
    with open(exposition, "w") as f:
        f.write(relay.metrics_text())
    if shutil.which("promtool"):
        with open(exposition) as f:
            lint = subprocess.run(["promtool", "check", "metrics"], stdin=f,
                                  capture_output=True, text=True)
        check(lint.returncode == 0, f"promtool check metrics: {lint.stdout}{lint.stderr}")
    # Every relay series the shipped alerts use exists.
    rules = open(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                              "../../deploy/k8s/relay/prometheusrule.yaml")).read()
    exposed = {line.split("{")[0].split(" ")[0] for line in open(exposition)
               if not line.startswith("#")}
    used = set(re.findall(r"pqa_relay_[a-z0-9_]+", rules))
    check(used and used <= exposed, f"alerts use series the relay does not expose: {used - exposed}")
    wait_for(10, "the offsets to be committed", lambda: relay.metric(
        "pqa_relay_pending_signals", must_exist=True) == 0)
    relay.stop()  # a clean stop commits what is finished
    # Restarted in the same group: committed offsets are past every dead-lettered signal. One
    # new signal per partition, after the old records: once both are read, any old record read
    # again would have been counted before them (a fixed wait proves nothing on a slow day).
    relay.start()
    for partition in (0, 1):
        sentinel = f"sentinel-{partition}"
        subprocess.run(["kcat", "-P", "-b", BOOTSTRAP, "-t", f"{NAME}-signals", "-K", "\t",
                        "-p", str(partition), "-z", "none"], check=True, text=True,
                       input=f"{sentinel}\t{signal_json('sig-' + sentinel, sentinel, band='qualified')}\n")
    wait_for(60, "the two new signals", lambda: relay.metric(
        "pqa_relay_signals_consumed_total", must_exist=True) >= 2)
    check(relay.metric("pqa_relay_signals_consumed_total") == 2,
          "signals were read again after a clean stop")
    wait_for(60, "the new signals' dead letters (400 from /bad)",
             lambda: len(consume_all(dlq)) >= 26)
    relay.stop()
    check(len(consume_all(dlq)) == 26, "records dead-lettered twice after a restart")
    print("dead_letter: 20 signals dead-lettered with their reasons (500 after 3 attempts, 410 "
          "disabling the endpoint, 400 at once, untrusted certificate) and 4 invalid records (one "
          "cut to the producer's limit, one with its key cut); "
          "nothing read again after a restart")


def scenario_rebalance():
    """A second relay joins the group and leaves it while requests are in flight to a slow
    receiver: partitions move away from the first relay and come back to it. Every signal is
    delivered; each account's signals first arrive in order; repeats are identical."""
    receiver = Receiver()
    receiver.plan = lambda path, n: ("ok", "slow", 3.0)
    create_topic(f"{NAME}-signals", 6)
    config = kafka_section(NAME) + f"""  endpoints:
    - name: hooks
      url: "{receiver.url('/hooks')}"
      allow_unsigned: true
      max_in_flight: 40
      timeout_ms: 20000
      retry: {{ schedule_ms: [200], max_attempts: 1000 }}
"""
    first, second = Relay(config, "rebalance-a"), Relay(config, "rebalance-b")
    first.start()
    accounts, per_account = 30, 4
    expected = produce_signals(accounts, per_account)
    all_ids = {sid for ids in expected.values() for sid in ids}
    wait_for(60, "the first wave of requests", lambda: len(receiver.snapshot()) >= accounts)
    second.start()  # takes half the partitions from the first while its requests are out
    second.stop()   # and gives them back: the first reads them again, its old requests pending
    wait_for(60, "the first relay to get every partition back",
             lambda: first.metric("pqa_relay_assigned_partitions") == 6)
    wait_for(120, "every signal", lambda: delivered_ids(receiver) >= all_ids)
    first.stop()
    by_id, order = first_arrivals(receiver.snapshot())
    for account, ids in expected.items():
        check(order[account] == ids, f"{account} first arrivals out of order: {order[account]}")
    repeats = len(receiver.snapshot()) - len(by_id)
    print(f"rebalance: {len(all_ids)} signals over {accounts} accounts delivered while 6 "
          f"partitions moved to a second relay and back with requests in flight; first "
          f"arrivals in order per account, {repeats} identical repeats")


def scenario_fenced():
    """A second relay starts with the first's static membership id, which fences the first:
    librdkafka declares its consumer dead (fatal). The first must stop with exit 3, rather than
    stay up with nothing it can read or commit, so that Kubernetes restarts it."""
    receiver = Receiver()
    receiver.plan = lambda path, n: ("ok",)
    create_topic(f"{NAME}-signals", 2)
    config = kafka_section(NAME).replace(
        "kafka:\n", "kafka:\n  group_instance_id: same-pod\n") + f"""  endpoints:
    - name: hooks
      url: "{receiver.url('/hooks')}"
      allow_unsigned: true
"""
    first, second = Relay(config, "fenced-a"), Relay(config, "fenced-b")
    first.start()
    second.start()
    deadline = time.time() + 60
    while first.proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    code = first.proc.poll()
    check(code == 3, f"the fenced relay did not stop with exit 3 (exit {code})")
    with open(first.log.name) as log:
        check("fatal Kafka client error" in log.read(), "the fenced relay did not log why")
    second.stop()
    print("fenced: the relay whose static membership was taken over stopped with exit 3")


if __name__ == "__main__":
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    {"faults": scenario_faults, "crm": scenario_crm,
     "dead_letter": scenario_dead_letter, "rebalance": scenario_rebalance,
     "fenced": scenario_fenced}[SCENARIO]()
    if not os.environ.get("PQA_TEST_KEEP"):
        shutil.rmtree(WORK, ignore_errors=True)
