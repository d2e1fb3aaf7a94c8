// The relay's pure core: signal decoding, routes, payloads (Standard Webhooks envelope,
// HubSpot and Salesforce templates), and every delivery rule of relay::EndpointQueue with
// time as a value: per-account order, coalescing, retries, dead letters, 410, slow-down,
// the circuit breaker and the rate limit; and the offsets the consumer may commit.
#include <simdjson.h>

#include <catch2/catch.hpp>
#include <cstdlib>

#include "config_loader.h"
#include "json_output.h"
#include "relay_dispatch.h"
#include "relay_payload.h"

using namespace pqa::scorer;
using relay::AttemptResult;
using relay::EndpointQueue;
using relay::Finish;
using relay::Finished;
using relay::TimeMs;

namespace {

int g_offset = 0;

SignalPtr signal(const std::string& account, double score = 70, int partition = 0,
                 std::string id = {}) {
  RelaySignal s;
  s.offset = g_offset++;
  s.signal_id = id.empty() ? account + "-" + std::to_string(s.offset) : id;
  s.kind = "threshold_crossed";
  s.account_id = account;
  s.band = "qualified";
  s.direction = "up";
  s.routing = "pls_assist";
  s.score = score;
  s.partition = partition;
  s.json = R"({"signal_id":")" + s.signal_id + "\"}";
  return std::make_shared<const RelaySignal>(std::move(s));
}

relay::EndpointPolicy quick_policy() {
  relay::EndpointPolicy p;
  p.retry.schedule_ms = {1000, 5000};
  p.retry.jitter = 0;
  p.retry.max_attempts = 4;
  p.breaker.failure_threshold = 100;
  return p;
}

const AttemptResult kOk{200, "", std::nullopt};
const AttemptResult kServerError{500, "HTTP 500: boom", std::nullopt};

std::vector<std::string> ids_of(const relay::Batch& b) {
  std::vector<std::string> out;
  for (const auto& s : b.signals) out.push_back(s->signal_id);
  return out;
}

std::size_t count(const std::vector<Finished>& f, Finish outcome) {
  std::size_t n = 0;
  for (const auto& x : f) n += x.outcome == outcome ? x.signals.size() : 0;
  return n;
}

bool is_json(const std::string& text) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  return parser.parse(text).get(doc) == simdjson::SUCCESS;
}

}  // namespace

// --- Decoding, routes, payloads -------------------------------------------------------------

TEST_CASE("relay decodes what the scorer publishes", "[relay]") {
  OutputSignal out;
  out.signal_id = "sig_1";
  out.account = pqa::rollup::AccountId("acme");
  out.signal.kind = pqa::rollup::SignalKind::kThresholdCrossed;
  out.signal.previous_band = pqa::rollup::Band::kQualified;
  out.signal.score.band = pqa::rollup::Band::kHot;
  out.signal.score.score = 83.25;
  out.signal.score.routing = pqa::rollup::Routing::kFullSales;
  out.signal.score.drivers = {{"breadth", 31.5}, {"fabric", 20.0}, {"depth", 12.25}};
  const std::string json = to_json(out, "pqa-v1");
  auto decoded = decode_signal(json);
  REQUIRE(std::holds_alternative<RelaySignal>(decoded));
  const auto& s = std::get<RelaySignal>(decoded);
  CHECK(s.signal_id == "sig_1");
  CHECK(s.kind == "threshold_crossed");
  CHECK(s.account_id == "acme");
  CHECK(s.band == "hot");
  CHECK(s.previous_band == "qualified");
  CHECK(s.direction == "up");
  CHECK(s.routing == "full_sales");
  CHECK(s.score == Approx(83.25));
  REQUIRE(s.drivers.size() == 3);
  CHECK(s.drivers[0].first == "breadth");
  CHECK(s.drivers[2].second == Approx(12.25));
  CHECK(s.json == json);
}

TEST_CASE("relay decodes a routing change, and a breadth expansion keeps the routing", "[relay]") {
  OutputSignal out;
  out.signal_id = "sig_2";
  out.account = pqa::rollup::AccountId("acme");
  out.signal.kind = pqa::rollup::SignalKind::kRoutingChanged;
  out.signal.score.band = pqa::rollup::Band::kHot;
  out.signal.previous_routing = pqa::rollup::Routing::kPlsAssist;
  out.signal.score.routing = pqa::rollup::Routing::kFullSales;
  auto decoded = decode_signal(to_json(out, "pqa-v1"));
  REQUIRE(std::holds_alternative<RelaySignal>(decoded));
  CHECK(std::get<RelaySignal>(decoded).kind == "routing_changed");
  CHECK(std::get<RelaySignal>(decoded).previous_routing == "pls_assist");
  CHECK(std::get<RelaySignal>(decoded).routing == "full_sales");
  // A CRM preset writes the routing field from every signal: a new department's signal must
  // not blank what a routing change set.
  out.signal.kind = pqa::rollup::SignalKind::kBreadthExpansion;
  out.signal.department = "finance";
  decoded = decode_signal(to_json(out, "pqa-v1"));
  REQUIRE(std::holds_alternative<RelaySignal>(decoded));
  CHECK(std::get<RelaySignal>(decoded).routing == "full_sales");
}

TEST_CASE("relay names what makes a record not a signal", "[relay]") {
  auto error = [](std::string_view json) {
    auto r = decode_signal(json);
    return std::holds_alternative<std::string>(r) ? std::get<std::string>(r) : "(decoded)";
  };
  CHECK(error("{oops").rfind("not JSON", 0) == 0);
  CHECK(error("[1]") == "not a JSON object");
  CHECK(error(R"({"kind":"threshold_crossed"})") == "signal_id is missing or not a string");
  CHECK(error(R"({"signal_id":"s","account_id":"a","kind":"x","band":"hot","score":1})") ==
        "kind 'x' is not a signal kind");
  CHECK(error(R"({"signal_id":"s","account_id":"a","kind":"seat_expansion","band":"warm",)"
              R"("score":1})") == "band 'warm' is not a band");
  // A foreign value is quoted bounded and escaped: it goes into a dead letter's header.
  const std::string huge_kind(1'000'000, 'k');
  CHECK(error(R"({"signal_id":"s","account_id":"a","kind":")" + huge_kind +
              R"(","band":"hot","score":1})") ==
        "kind '" + std::string(64, 'k') + "' is not a signal kind");
  CHECK(error(R"({"signal_id":"s","account_id":"a","kind":"x\nforged","band":"hot","score":1})") ==
        "kind 'x\\x0aforged' is not a signal kind");
  CHECK(error(R"({"signal_id":"s","account_id":"a","kind":"seat_expansion","band":"hot",)"
              R"("score":"high"})") == "score is missing or not a number");
  // signal_id becomes a request header: a line break in it would smuggle another one in.
  CHECK(error(R"({"signal_id":"a\r\nX-Evil: 1","account_id":"a","kind":"seat_expansion",)"
              R"("band":"hot","score":1})") ==
        "signal_id must be 1 to 256 printable ASCII characters");
  CHECK(error(R"({"signal_id":")" + std::string(257, 'a') +
              R"(","account_id":"a","kind":"seat_expansion","band":"hot","score":1})") ==
        "signal_id must be 1 to 256 printable ASCII characters");
}

TEST_CASE("relay routes match by kind, band, direction and routing", "[relay]") {
  const auto s = signal("a");  // threshold_crossed, qualified, up, pls_assist
  CHECK(route_matches({}, *s));
  RelayRoute hot_up;
  hot_up.bands = {"hot"};
  hot_up.directions = {"up"};
  CHECK_FALSE(route_matches({hot_up}, *s));
  RelayRoute qualified;
  qualified.bands = {"qualified", "hot"};
  qualified.kinds = {"threshold_crossed"};
  CHECK(route_matches({hot_up, qualified}, *s));
  RelayRoute sales;
  sales.routings = {"full_sales"};
  CHECK_FALSE(route_matches({sales}, *s));
}

TEST_CASE("relay's Standard Webhooks envelope carries type, timestamp and the signal", "[relay]") {
  RelaySignal s = *signal("a");
  s.event_time = "2026-11-02T10:00:00.000Z";
  const std::string body = standard_webhooks_body(s);
  CHECK(body == R"({"type":"pqa.threshold_crossed","timestamp":"2026-11-02T10:00:00.000Z",)"
                R"("data":)" +
                    s.json + "}");
  CHECK(is_json(body));
}

TEST_CASE("relay's HubSpot and Salesforce presets make batch field updates", "[relay]") {
  RelaySignal with_drivers = *signal("acme \"co\"", 81.456);
  with_drivers.drivers = {{"breadth", 30.25}, {"fabric", -2}};
  const auto a = std::make_shared<const RelaySignal>(with_drivers);
  const auto b = signal("globex", 64);

  const PayloadPreset* hubspot = find_payload_preset("hubspot");
  REQUIRE(hubspot != nullptr);
  CHECK(hubspot->max_records == 100);
  CHECK(hubspot->method == "POST");
  const std::string hs = PayloadTemplate(hubspot->body, hubspot->record).render({a, b});
  REQUIRE(is_json(hs));
  CHECK(hs.rfind(R"({"inputs":[{"idProperty":"pqa_account_id","id":"acme \"co\"",)", 0) == 0);
  CHECK(hs.find(R"("pqa_score":81.46,"pqa_band":"qualified")") != std::string::npos);
  CHECK(hs.find(R"j("pqa_top_driver_1":"breadth (+30.25)","pqa_top_driver_2":"fabric (-2)",)j"
                R"j("pqa_top_driver_3":"")j") != std::string::npos);
  CHECK(hs.find(R"("id":"globex")") != std::string::npos);

  const PayloadPreset* salesforce = find_payload_preset("salesforce");
  REQUIRE(salesforce != nullptr);
  CHECK(salesforce->max_records == 200);
  CHECK(salesforce->method == "PATCH");
  const std::string sf = PayloadTemplate(salesforce->body, salesforce->record).render({b});
  CHECK(sf == R"({"allOrNone":false,"records":[{"attributes":{"type":"Account"},)"
              R"("PQA_Account_Id__c":"globex","PQA_Score__c":64,"PQA_Band__c":"qualified",)"
              R"("PQA_Routing__c":"pls_assist","PQA_Top_Driver_1__c":"",)"
              R"("PQA_Top_Driver_2__c":"","PQA_Top_Driver_3__c":"",)"
              R"("PQA_Signal_Id__c":")" +
                  b->signal_id + R"("}]})");
  CHECK(find_payload_preset("pipedrive") == nullptr);

  // The widest number JSON may carry is written whole, still JSON.
  RelaySignal huge = *signal("initech", 1e300);
  huge.drivers = {{"depth", -1.7976931348623157e308}};
  const std::string wide = PayloadTemplate(hubspot->body, hubspot->record)
                               .render({std::make_shared<const RelaySignal>(huge)});
  REQUIRE(is_json(wide));
  CHECK(wide.find(R"("pqa_score":1e+300,)") != std::string::npos);
  CHECK(wide.find(R"j("pqa_top_driver_1":"depth (-1.7976931348623157e+308)")j") !=
        std::string::npos);
}

TEST_CASE("relay templates are checked when loaded", "[relay]") {
  auto problem = [](const std::string& body, const std::string& record) {
    try {
      PayloadTemplate t(body, record);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  CHECK(problem("[{{records}}]", R"({"id":{{account_id}},"s":{{score}}})") == "(accepted)");
  CHECK(problem("[{{records}}]", R"({"id":{{acount_id}}})") == "unknown placeholder {{acount_id}}");
  CHECK(problem("[]", R"({"id":{{account_id}}})") == "the body must use {{records}} exactly once");
  CHECK(problem("[{{records}}]", R"({"r":{{records}}})") == "{{records}} belongs in the body");
  CHECK(problem("[{{records}}]", R"({"id":"{{account_id}}"})").rfind("does not make JSON", 0) == 0);
  CHECK(problem("[{{records}}]", R"({"id":{{account_id})").rfind("unterminated", 0) == 0);
}

// --- Delivery rules --------------------------------------------------------------------------

TEST_CASE("relay keeps order per account: a later signal never overtakes", "[relay]") {
  EndpointQueue q(quick_policy(), 1);
  const auto a1 = signal("a"), a2 = signal("a"), b1 = signal("b");
  q.enqueue(a1, 0);
  q.enqueue(a2, 0);
  q.enqueue(b1, 0);
  auto first = q.take_batch(0);
  auto second = q.take_batch(0);
  REQUIRE(first);
  REQUIRE(second);
  CHECK(ids_of(*first) == std::vector<std::string>{a1->signal_id});
  CHECK(ids_of(*second) == std::vector<std::string>{b1->signal_id});
  CHECK_FALSE(q.take_batch(0));  // a2 waits for a1, although slots are free
  // a1 fails: it is retried before a2 goes, however long that takes.
  auto f = q.complete(first->id, kServerError, 10);
  CHECK(f.empty());
  CHECK_FALSE(q.take_batch(500));
  CHECK(q.next_wakeup(500) == 1010);
  auto retry = q.take_batch(1010);
  REQUIRE(retry);
  CHECK(ids_of(*retry) == std::vector<std::string>{a1->signal_id});
  CHECK(retry->attempt == 2);
  f = q.complete(retry->id, kOk, 1020);
  REQUIRE(count(f, Finish::kDelivered) == 1);
  auto next = q.take_batch(1020);
  REQUIRE(next);
  CHECK(ids_of(*next) == std::vector<std::string>{a2->signal_id});
}

TEST_CASE("relay retries on the configured schedule, with bounded jitter", "[relay]") {
  auto policy = quick_policy();
  policy.retry.jitter = 0.2;
  policy.retry.max_attempts = 100;
  EndpointQueue q(policy, 7);
  q.enqueue(signal("a"), 0);
  TimeMs now = 0;
  for (int attempt = 1; attempt <= 5; ++attempt) {
    auto b = q.take_batch(now);
    REQUIRE(b);
    CHECK(b->attempt == attempt);
    q.complete(b->id, kServerError, now);
    const TimeMs base = attempt == 1 ? 1000 : 5000;  // the last step repeats
    const auto wake = q.next_wakeup(now);
    REQUIRE(wake);
    CHECK(*wake - now >= base * 8 / 10);
    CHECK(*wake - now <= base * 12 / 10);
    now = *wake;
  }
}

TEST_CASE("relay honours Retry-After and slows down on 429", "[relay]") {
  auto policy = quick_policy();
  policy.max_in_flight = 8;
  EndpointQueue q(policy, 1);
  for (const char* a : {"a", "b", "c"}) q.enqueue(signal(a), 0);
  auto b = q.take_batch(0);
  REQUIRE(b);
  q.complete(b->id, AttemptResult{429, "HTTP 429", 3000}, 100);
  CHECK(q.slow_down_factor() == Approx(0.5));
  // The whole endpoint waits, not only the account that got the 429.
  CHECK_FALSE(q.take_batch(2000));
  CHECK(q.next_wakeup(2000) == 3100);
  auto after = q.take_batch(3100);
  REQUIRE(after);
  // Half of 8 slots; each success gives back a sixteenth.
  q.complete(after->id, kOk, 3200);
  CHECK(q.slow_down_factor() == Approx(0.5 + 1.0 / 16));
  // 502 and 504 slow down too; 500 does not.
  EndpointQueue r(policy, 1);
  r.enqueue(signal("x"), 0);
  auto x = r.take_batch(0);
  r.complete(x->id, AttemptResult{502, "HTTP 502", std::nullopt}, 0);
  CHECK(r.slow_down_factor() == Approx(0.5));
  x = r.take_batch(*r.next_wakeup(0));
  r.complete(x->id, kServerError, 0);
  CHECK(r.slow_down_factor() == Approx(0.5));
}

TEST_CASE("relay dead-letters after max_attempts with the last error", "[relay]") {
  EndpointQueue q(quick_policy(), 1);  // 4 attempts
  q.enqueue(signal("a"), 0);
  TimeMs now = 0;
  std::vector<Finished> f;
  for (int i = 0; i < 4; ++i) {
    auto b = q.take_batch(now);
    REQUIRE(b);
    f = q.complete(b->id, AttemptResult{503, "HTTP 503: try " + std::to_string(i), std::nullopt},
                   now);
    if (auto w = q.next_wakeup(now)) now = *w;
  }
  REQUIRE(count(f, Finish::kDeadLettered) == 1);
  CHECK(f.back().error == "HTTP 503: try 3 (after 4 attempts)");
  CHECK(f.back().attempts == 4);
  CHECK(q.queued_signals() == 0);
}

TEST_CASE("relay dead-letters after max_age however few the attempts", "[relay]") {
  auto policy = quick_policy();
  policy.retry.schedule_ms = {60'000};
  policy.retry.max_age_ms = 90'000;
  EndpointQueue q(policy, 1);
  q.enqueue(signal("a"), 0);
  auto b = q.take_batch(0);
  q.complete(b->id, kServerError, 0);
  CHECK(q.next_wakeup(0) == 60'000);
  b = q.take_batch(60'000);
  q.complete(b->id, kServerError, 60'000);
  CHECK(q.next_wakeup(60'000) == 90'000);  // the last try is at the age limit, not past it
  b = q.take_batch(90'000);
  auto f = q.complete(b->id, kServerError, 90'000);
  CHECK(count(f, Finish::kDeadLettered) == 1);
}

TEST_CASE("relay counts a signal's age from when the scorer emitted it, not from the read",
          "[relay]") {
  // Read again after a restart (or by a partition's next owner) 29 hours after it was
  // emitted: past max_age (28 h) already, so one failure dead-letters it. Counted from the
  // read, restarts within the schedule would keep it, and its partition's offset, for ever.
  auto policy = quick_policy();
  policy.retry.max_age_ms = 28 * 3'600'000LL;
  EndpointQueue q(policy, 1);
  RelaySignal old = *signal("a");
  old.age_when_read_ms = 29 * 3'600'000LL;
  q.enqueue(std::make_shared<const RelaySignal>(old), 0);
  auto f = q.complete(q.take_batch(0)->id, kServerError, 0);
  CHECK(count(f, Finish::kDeadLettered) == 1);
  // A fresh one of the same failure is retried.
  EndpointQueue r(policy, 1);
  r.enqueue(signal("a"), 0);
  CHECK(r.complete(r.take_batch(0)->id, kServerError, 0).empty());
}

TEST_CASE("relay retries a CRM batch whose 2xx answer reports failed records", "[relay]") {
  using pqa::scorer::crm_partial_failure;
  // HubSpot's batch update: 207 Multi-Status when some inputs failed.
  CHECK(crm_partial_failure("hubspot", 200, R"({"status":"COMPLETE","results":[]})") ==
        std::nullopt);
  const auto hubspot = crm_partial_failure(
      "hubspot", 207, R"({"status":"COMPLETE","errors":[{"category":"OBJECT_NOT_FOUND"}]})");
  REQUIRE(hubspot);
  CHECK(hubspot->rfind("HTTP 207: some records failed: {", 0) == 0);
  // Salesforce's sObject Collections with allOrNone false: 200 and a result per record.
  CHECK(crm_partial_failure("salesforce", 200, R"([{"id":"1","success":true}])") == std::nullopt);
  const auto salesforce = crm_partial_failure(
      "salesforce", 200,
      R"([{"id":"1","success":true},{"success":false,"errors":[{"statusCode":"UNABLE_TO_LOCK_ROW"}]}])");
  REQUIRE(salesforce);
  CHECK(salesforce->rfind("HTTP 200: 1 of 2 records failed: [", 0) == 0);
  CHECK(crm_partial_failure("salesforce", 200, "{}") == std::nullopt);  // not a result list
  CHECK(crm_partial_failure("standard_webhooks", 207, "") == std::nullopt);
  // The CRM's answer is quoted cut and escaped, as input is.
  const auto long_answer = crm_partial_failure("hubspot", 207, std::string(5000, 'e') + "\n");
  REQUIRE(long_answer);
  CHECK(*long_answer == "HTTP 207: some records failed: " + std::string(200, 'e'));

  // Such an answer is not a delivery: the batch is retried, then dead-lettered.
  auto policy = quick_policy();
  policy.retry.max_attempts = 2;
  EndpointQueue q(policy, 1);
  q.enqueue(signal("a"), 0);
  AttemptResult partial{207, *hubspot, std::nullopt, true};
  CHECK(relay::classify(partial) == relay::AttemptClass::kRetryable);
  CHECK(q.complete(q.take_batch(0)->id, partial, 0).empty());
  CHECK(q.queued_signals() == 1);
  const auto f = q.complete(q.take_batch(1000)->id, partial, 1000);
  REQUIRE(count(f, Finish::kDeadLettered) == 1);
  CHECK(f.back().error.rfind("HTTP 207: some records failed", 0) == 0);
}

TEST_CASE("relay does not repeat a request the endpoint refused (4xx)", "[relay]") {
  EndpointQueue q(quick_policy(), 1);
  q.enqueue(signal("a"), 0);
  auto f = q.complete(q.take_batch(0)->id, AttemptResult{400, "HTTP 400: bad", std::nullopt}, 0);
  REQUIRE(count(f, Finish::kDeadLettered) == 1);
  CHECK(f.back().error == "HTTP 400: bad (not retried: the request was refused)");
  // 401, 403, 408 and 409 are retried (a token being rotated, a slow or busy receiver).
  for (int status : {401, 403, 408, 409}) {
    EndpointQueue r(quick_policy(), 1);
    r.enqueue(signal("a"), 0);
    CHECK(r.complete(r.take_batch(0)->id, AttemptResult{status, "x", std::nullopt}, 0).empty());
    CHECK(r.queued_signals() == 1);
  }
}

TEST_CASE("relay disables an endpoint that answers 410 Gone", "[relay]") {
  EndpointQueue q(quick_policy(), 1);
  q.enqueue(signal("a"), 0);
  q.enqueue(signal("a"), 0);
  q.enqueue(signal("b"), 0);
  auto b = q.take_batch(0);
  auto f = q.complete(b->id, AttemptResult{410, "HTTP 410", std::nullopt}, 0);
  CHECK(q.disabled());
  CHECK(count(f, Finish::kDeadLettered) == 3);
  CHECK(f.front().error == "endpoint disabled: HTTP 410");
  auto later = q.enqueue(signal("c"), 5);
  CHECK(count(later, Finish::kDeadLettered) == 1);
  CHECK_FALSE(q.take_batch(10));
  CHECK_FALSE(q.next_wakeup(10));
}

TEST_CASE("relay's circuit breaker opens, probes once, and closes", "[relay]") {
  auto policy = quick_policy();
  policy.retry.schedule_ms = {10};
  policy.retry.max_attempts = 100;
  policy.breaker = {3, 1000};
  EndpointQueue q(policy, 1);
  for (const char* a : {"a", "b", "c", "d"}) q.enqueue(signal(a), 0);
  for (int i = 0; i < 3; ++i) q.complete(q.take_batch(0)->id, kServerError, 0);
  CHECK(q.breaker_state(0) == relay::BreakerState::kOpen);
  CHECK_FALSE(q.take_batch(500));  // d is ready, but the breaker is open
  CHECK(q.next_wakeup(500) == 1000);
  CHECK(q.breaker_state(1000) == relay::BreakerState::kHalfOpen);
  auto probe = q.take_batch(1000);
  REQUIRE(probe);
  CHECK_FALSE(q.take_batch(1000));            // one probe at a time
  q.complete(probe->id, kServerError, 1001);  // the probe fails: open again
  CHECK(q.breaker_state(1500) == relay::BreakerState::kOpen);
  probe = q.take_batch(2001);
  REQUIRE(probe);
  q.complete(probe->id, kOk, 2002);
  CHECK(q.breaker_state(2002) == relay::BreakerState::kClosed);
  CHECK(q.take_batch(2002));
  CHECK(q.take_batch(2002));
}

TEST_CASE("relay's rate limit spaces requests", "[relay]") {
  auto policy = quick_policy();
  policy.max_in_flight = 100;
  policy.rate_limit = {2, 1000};
  EndpointQueue q(policy, 1);
  for (int i = 0; i < 5; ++i) q.enqueue(signal("acct" + std::to_string(i)), 0);
  CHECK(q.take_batch(0));
  CHECK(q.take_batch(0));
  CHECK_FALSE(q.take_batch(0));
  CHECK(q.next_wakeup(0) == 500);
  CHECK_FALSE(q.take_batch(499));
  CHECK(q.take_batch(500));
  CHECK_FALSE(q.take_batch(500));

  // Below one request per window: half a request a second is one every two seconds.
  policy.rate_limit = {0.5, 1000};
  EndpointQueue slow(policy, 1);
  for (int i = 0; i < 3; ++i) slow.enqueue(signal("acct" + std::to_string(i)), 0);
  CHECK(slow.take_batch(0));
  CHECK(slow.next_wakeup(0) == 2000);
  CHECK_FALSE(slow.take_batch(1999));
  CHECK(slow.take_batch(2000));
}

TEST_CASE("relay coalesces queued field updates into the newest", "[relay]") {
  auto policy = quick_policy();
  policy.coalesce = true;
  policy.max_records = 2;
  EndpointQueue q(policy, 1);
  const auto a1 = signal("a", 60), a2 = signal("a", 65), a3 = signal("a", 70), b1 = signal("b");
  const auto c1 = signal("c");
  for (const auto& s : {a1, a2, a3, b1, c1}) q.enqueue(s, 0);
  CHECK(q.queued_signals() == 5);
  auto batch = q.take_batch(0);
  REQUIRE(batch);  // at most two accounts per request, a's newest value only
  CHECK(ids_of(*batch) == std::vector<std::string>{a3->signal_id, b1->signal_id});
  auto f = q.complete(batch->id, kOk, 1);
  CHECK(count(f, Finish::kSuperseded) == 2);
  CHECK(count(f, Finish::kDelivered) == 2);
  CHECK(ids_of(*q.take_batch(1)) == std::vector<std::string>{c1->signal_id});
}

TEST_CASE("relay sends the newest update after a failed older one, never the older", "[relay]") {
  auto policy = quick_policy();
  policy.coalesce = true;
  EndpointQueue q(policy, 1);
  const auto a1 = signal("a", 60), a2 = signal("a", 65), a3 = signal("a", 70);
  q.enqueue(a1, 0);
  auto first = q.take_batch(0);
  q.enqueue(a2, 1);  // a1 in flight: these wait, coalesced
  q.enqueue(a3, 2);
  CHECK_FALSE(q.take_batch(2));
  q.complete(first->id, kServerError, 3);
  auto retry = q.take_batch(*q.next_wakeup(3));
  REQUIRE(retry);
  CHECK(ids_of(*retry) == std::vector<std::string>{a3->signal_id});
  CHECK(retry->attempt == 2);  // the failed update's attempts carry over
  auto f = q.complete(retry->id, kOk, 2000);
  CHECK(count(f, Finish::kSuperseded) == 2);
  CHECK(count(f, Finish::kDelivered) == 1);
  CHECK(q.queued_signals() == 0);
}

TEST_CASE("relay forgets the signals of a revoked partition", "[relay]") {
  EndpointQueue q(quick_policy(), 1);
  q.enqueue(signal("a", 1, 0), 0);
  q.enqueue(signal("b", 1, 1), 0);
  q.enqueue(signal("b", 1, 1), 0);
  auto in_flight = q.take_batch(0);  // a, partition 0
  q.forget_partition(0, 0);
  CHECK(q.queued_signals() == 2);
  CHECK(q.complete(in_flight->id, kOk, 1).empty());  // completes without effect
  auto b = q.take_batch(1);
  REQUIRE(b);
  CHECK(b->signals.front()->account_id == "b");
}

TEST_CASE("relay: a request in flight when its partition was revoked keeps the account's order",
          "[relay]") {
  EndpointQueue q(quick_policy(), 1);
  const auto old = signal("a", 1, 0);
  q.enqueue(old, 0);
  auto stale = q.take_batch(0);
  REQUIRE(stale);
  q.forget_partition(0, 0);
  // Re-assigned: the same partition is read again. Its signals wait for the old request,
  // which cannot be recalled, so that the receiver never sees them out of order.
  const auto again = signal("a", 1, 0);
  q.enqueue(again, 10);
  CHECK_FALSE(q.take_batch(10));
  // The old request fails: nothing of it is retried or dead-lettered (no longer ours), and
  // its result does not finish the new signal.
  CHECK(q.complete(stale->id, kServerError, 20).empty());
  CHECK(q.queued_signals() == 1);
  auto fresh = q.take_batch(20);
  REQUIRE(fresh);
  CHECK(ids_of(*fresh) == std::vector<std::string>{again->signal_id});
  // A stale id completing again (a duplicate callback) is ignored, the new request decides.
  CHECK(q.complete(stale->id, kOk, 21).empty());
  auto f = q.complete(fresh->id, kOk, 22);
  REQUIRE(count(f, Finish::kDelivered) == 1);
  CHECK(f.back().signals.front() == again);
}

TEST_CASE("relay forgets per signal when an account spans partitions", "[relay]") {
  auto policy = quick_policy();
  policy.coalesce = true;
  EndpointQueue q(policy, 1);
  const auto from0 = signal("a", 60, 0), from1 = signal("a", 65, 1);
  q.enqueue(from0, 0);
  auto first = q.take_batch(0);
  q.enqueue(from1, 0);  // waits behind the request in flight
  q.forget_partition(1, 0);
  CHECK(q.queued_signals() == 1);
  auto f = q.complete(first->id, kOk, 1);
  REQUIRE(count(f, Finish::kDelivered) == 1);
  CHECK(f.back().signals.front() == from0);
  CHECK_FALSE(q.take_batch(1));
  CHECK(q.queued_signals() == 0);
}

TEST_CASE("relay dead-letters a refused field update alone: the newer one is still sent",
          "[relay]") {
  auto policy = quick_policy();
  policy.coalesce = true;
  EndpointQueue q(policy, 1);
  const auto older = signal("a", 60), newer = signal("a", 70);
  q.enqueue(older, 0);
  auto b = q.take_batch(0);
  q.enqueue(newer, 1);
  auto f = q.complete(b->id, AttemptResult{400, "HTTP 400: bad", std::nullopt}, 2);
  REQUIRE(count(f, Finish::kDeadLettered) == 1);
  CHECK(f.back().signals.front() == older);
  auto next = q.take_batch(2);
  REQUIRE(next);
  CHECK(ids_of(*next) == std::vector<std::string>{newer->signal_id});
  CHECK(next->attempt == 1);
}

TEST_CASE("relay honours Retry-After up to max_age", "[relay]") {
  auto policy = quick_policy();  // schedule 1 s, 5 s
  policy.retry.max_age_ms = 5000;
  EndpointQueue q(policy, 1);
  q.enqueue(signal("a"), 0);
  q.enqueue(signal("b"), 0);
  const TimeMs a_year = 365LL * 86400 * 1000;
  q.complete(q.take_batch(0)->id, AttemptResult{429, "HTTP 429", a_year}, 0);
  CHECK(q.next_wakeup(0) == 5000);  // the endpoint pause is cut to 5 s
  EndpointQueue r(policy, 1);
  r.enqueue(signal("c"), 0);
  CHECK(r.complete(r.take_batch(0)->id, AttemptResult{503, "HTTP 503", a_year}, 0).empty());
  CHECK(r.next_wakeup(0) == 5000);  // so is an account's retry
}

TEST_CASE("relay pauses at max_pending_signals and resumes below 90 % of it", "[relay]") {
  CHECK_FALSE(relay::should_pause(99, 100));
  CHECK(relay::should_pause(100, 100));
  CHECK_FALSE(relay::may_resume(90, 100));
  CHECK(relay::may_resume(89, 100));
  // Small bounds resume too (9 / 10 of 1 is 0 in integers: it never would).
  CHECK(relay::should_pause(1, 1));
  CHECK_FALSE(relay::may_resume(1, 1));
  CHECK(relay::may_resume(0, 1));
  CHECK(relay::may_resume(1, 2));
}

TEST_CASE("relay commits only past finished signals", "[relay]") {
  relay::OffsetTracker t;
  const auto gen = t.assign(3);
  for (int offset = 10; offset < 15; ++offset) t.read(3, offset);
  CHECK(t.unfinished() == 5);
  t.finish(3, gen, 11);
  t.finish(3, gen, 12);
  CHECK(t.take_commits().empty());  // 10 is still out: nothing past it may be committed
  t.finish(3, gen, 10);
  CHECK(t.take_commits() == std::vector<std::pair<int, std::int64_t>>{{3, 13}});
  CHECK(t.take_commits().empty());  // no movement, nothing to commit
  t.finish(3, gen + 100, 13);       // another assignment's signal: ignored
  t.finish(3, gen, 14);
  CHECK(t.position(3) == 13);
  t.finish(3, gen, 13);
  CHECK(t.take_commits() == std::vector<std::pair<int, std::int64_t>>{{3, 15}});
  // A commit that failed is handed out again, not taken for done.
  t.commit_failed(3, 15);
  CHECK(t.take_commits() == std::vector<std::pair<int, std::int64_t>>{{3, 15}});
  CHECK(t.take_commits().empty());
  t.commit_failed(3, 12);  // an older commit's failure: a later one covers it
  CHECK(t.take_commits().empty());
  t.revoke(3);
  CHECK_FALSE(t.position(3));
  const auto again = t.assign(3);
  CHECK(again != gen);
}

TEST_CASE("relay parses Retry-After as seconds or an HTTP date", "[relay]") {
  using relay::parse_retry_after;
  CHECK(parse_retry_after("120", 0) == 120'000);
  CHECK(parse_retry_after(" 0 ", 0) == 0);
  // 1994-11-06T08:49:37Z = 784111777 s.
  CHECK(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111770'000) == 7'000);
  CHECK(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111790'000) == 0);  // past
  CHECK_FALSE(parse_retry_after("soon", 0));
  CHECK_FALSE(parse_retry_after("-5", 0));
  CHECK_FALSE(parse_retry_after("Sun, 06 Nov 1994 08:49:37 PST", 0));
  // Bounded to a year, without overflowing on the way.
  CHECK(parse_retry_after("99999999999999999999999", 0) == 365LL * 86400 * 1000);
  CHECK(parse_retry_after("Sun, 06 Nov 9999 08:49:37 GMT", 0) == 365LL * 86400 * 1000);
  CHECK_FALSE(parse_retry_after("Sun, 06 Nov 999999999 08:49:37 GMT", 0));
  CHECK_FALSE(parse_retry_after("Sun, 06 Nov 1994 -8:49:37 GMT", 0));
  // The two obsolete forms RFC 9110 still has recipients read.
  CHECK(parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", 784111770'000) == 7'000);
  CHECK(parse_retry_after("Sun Nov  6 08:49:37 1994", 784111770'000) == 7'000);
  CHECK(parse_retry_after("Sunday, 06-Nov-94 08:49:37 PST", 784111770'000) == std::nullopt);
  // A two-digit year is at most 50 years ahead: "27" seen in 2026 is 2027.
  const TimeMs dec_2026 = 1796083200'000;  // 2026-12-01T00:00:00Z
  CHECK(parse_retry_after("Friday, 01-Jan-27 00:00:00 GMT", dec_2026) == 31LL * 86400 * 1000);
}

TEST_CASE("relay classifies responses", "[relay]") {
  using relay::AttemptClass;
  auto cls = [](int status) { return relay::classify(AttemptResult{status, "", std::nullopt}); };
  CHECK(cls(0) == AttemptClass::kTransportError);
  CHECK(cls(200) == AttemptClass::kSuccess);
  CHECK(cls(204) == AttemptClass::kSuccess);
  CHECK(cls(207) == AttemptClass::kSuccess);
  CHECK(cls(301) == AttemptClass::kPermanent);
  CHECK(cls(422) == AttemptClass::kPermanent);
  CHECK(cls(410) == AttemptClass::kGone);
  CHECK(cls(429) == AttemptClass::kSlowDown);
  CHECK(cls(502) == AttemptClass::kSlowDown);
  CHECK(cls(504) == AttemptClass::kSlowDown);
  CHECK(cls(500) == AttemptClass::kRetryable);
  CHECK(cls(503) == AttemptClass::kRetryable);
}

// --- Configuration ---------------------------------------------------------------------------

TEST_CASE("relay endpoints are configured in the relay section", "[relay][config]") {
  const auto c = parse_config(R"(
relay:
  group_id: crm
  endpoints:
    - name: hooks
      url: https://hooks.example.com:8443/pqa?x=1
      secrets: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
      routes: [{ kinds: threshold_crossed, bands: [hot, qualified], directions: [up] }]
    - name: hubspot
      url: https://api.hubapi.com/crm/v3/objects/companies/batch/update
      format: hubspot
      headers: { Authorization: "Bearer token" }
      rate_limit: { requests: 100, per_ms: 10000 }
      retry: { schedule_ms: [1000, 2000], max_attempts: 3 }
)");
  REQUIRE(c.relay.endpoints.size() == 2);
  const auto& hooks = c.relay.endpoints[0];
  CHECK(c.relay.group_id == "crm");
  CHECK(hooks.parsed.tls);
  CHECK(hooks.parsed.host == "hooks.example.com");
  CHECK(hooks.parsed.port == "8443");
  CHECK(hooks.parsed.target == "/pqa?x=1");
  CHECK(hooks.payload.kind == PayloadFormat::Kind::kStandardWebhooks);
  REQUIRE(hooks.routes.size() == 1);
  CHECK(hooks.routes[0].kinds == std::set<std::string>{"threshold_crossed"});
  CHECK(hooks.routes[0].bands == std::set<std::string>{"hot", "qualified"});
  CHECK(hooks.secrets.size() == 1);
  const auto& hubspot = c.relay.endpoints[1];
  CHECK(hubspot.payload.kind == PayloadFormat::Kind::kTemplate);
  CHECK(hubspot.payload.max_records == 100);
  CHECK(hubspot.method == "POST");
  CHECK(hubspot.parsed.port == "443");
  CHECK(hubspot.rate_limit.requests == 100);
  CHECK(hubspot.retry.schedule_ms == std::vector<std::int64_t>{1000, 2000});
  CHECK(hubspot.retry.max_attempts == 3);
  CHECK(hubspot.headers.front().first == "Authorization");
}

TEST_CASE("relay config errors name the key", "[relay][config]") {
  auto key_of = [](const std::string& yaml) {
    try {
      parse_config(yaml);
    } catch (const ConfigException& e) {
      return e.key();
    }
    return std::string("(no error)");
  };
  const std::string bare = "relay: {endpoints: [{name: e, url: 'http://127.0.0.1:9/x'";
  // Unsigned Standard Webhooks only when asked for, and only an enabled endpoint is checked.
  CHECK(key_of(bare + "}]}") == "relay.endpoints[0].secrets");
  CHECK(key_of(bare + ", secrets: ''}]}") == "relay.endpoints[0].secrets");
  CHECK(key_of(bare + ", enabled: false}]}") == "(no error)");
  CHECK(key_of(bare + ", format: hubspot}]}") == "(no error)");  // a CRM's own authorization
  const std::string ep = bare + ", allow_unsigned: true";
  CHECK(key_of(ep + "}]}") == "(no error)");
  CHECK(key_of("relay: {endpoints: [{url: 'http://h/x'}]}") == "relay.endpoints[0].name");
  CHECK(key_of(ep + "}, {name: e, url: 'http://h/'}]}") == "relay.endpoints[1].name");
  CHECK(key_of("relay: {endpoints: [{name: e, url: 'ftp://h/x'}]}") == "relay.endpoints[0].url");
  CHECK(key_of("relay: {endpoints: [{name: e, url: 'http://h:99999/'}]}") ==
        "relay.endpoints[0].url");
  CHECK(key_of(ep + ", format: pipedrive}]}") == "relay.endpoints[0].format");
  CHECK(key_of(ep + ", format: template}]}") == "relay.endpoints[0].template.record");
  CHECK(key_of(ep + ", format: template, template: {record: '{{nope}}'}}]}") ==
        "relay.endpoints[0].template");
  CHECK(key_of(ep + ", secrets: whsec_c2hvcnQ=}]}") == "relay.endpoints[0].secrets");
  CHECK(key_of(ep + ", routes: [{bands: [warm]}]}]}") == "relay.endpoints[0].routes[0].bands[0]");
  CHECK(key_of(ep + ", headers: {webhook-id: x}}]}") == "relay.endpoints[0].headers.webhook-id");
  // A line break in a value would smuggle a header (or a request) in.
  CHECK(key_of(ep + R"(, headers: {X-Token: "a\r\nX-Evil: 1"}}]})") ==
        "relay.endpoints[0].headers.X-Token");
  CHECK(key_of(ep + R"(, headers: {"X Token": a}}]})") == "relay.endpoints[0].headers.X Token");
  CHECK(key_of(ep + ", headers: {X-Token: 'Bearer a.b-c'}}]}") == "(no error)");
  CHECK(key_of(ep + ", retry: {schedule_ms: []}}]}") == "relay.endpoints[0].retry.schedule_ms");
  CHECK(key_of(ep + ", retry: {jitter: 2}}]}") == "relay.endpoints[0].retry.jitter");
  // NaN passes a range check written as "< 0 || > 1"; durations are added to clock readings.
  CHECK(key_of(ep + ", retry: {jitter: .nan}}]}") == "relay.endpoints[0].retry.jitter");
  CHECK(key_of(ep + ", rate_limit: {requests: .nan}}]}") ==
        "relay.endpoints[0].rate_limit.requests");
  CHECK(key_of(ep + ", retry: {schedule_ms: [9223372036854775807]}}]}") ==
        "relay.endpoints[0].retry.schedule_ms[0]");
  CHECK(key_of(ep + ", retry: {max_age_ms: 9223372036854775000}}]}") ==
        "relay.endpoints[0].retry.max_age_ms");
  CHECK(key_of(ep + ", breaker: {open_ms: 40000000000}}]}") ==
        "relay.endpoints[0].breaker.open_ms");
  CHECK(key_of(ep + ", tls: {ca_file: /nonexistent.pem}}]}") == "relay.endpoints[0].tls.ca_file");
  CHECK(key_of(ep + ", method: GET}]}") == "relay.endpoints[0].method");
  CHECK(key_of(ep + ", max_in_flight: 0}]}") == "relay.endpoints[0].max_in_flight");
  CHECK(key_of(ep + ", colour: red}]}") == "relay.endpoints[0].colour");
}

TEST_CASE("relay URLs are parsed strictly", "[relay][config]") {
  auto u = parse_url("http://[::1]:8080");
  CHECK(u.host == "::1");
  CHECK(u.port == "8080");
  CHECK(u.target == "/");
  u = parse_url("https://crm.example.com/a/b#frag");
  CHECK(u.port == "443");
  CHECK(u.target == "/a/b");
  CHECK_THROWS_AS(parse_url("https://user:pw@crm.example.com/"), std::invalid_argument);
  CHECK_THROWS_AS(parse_url("https:///x"), std::invalid_argument);
}

TEST_CASE("relay's shipped config loads, endpoints switched by the environment",
          "[relay][config]") {
  const std::string path = std::string(PQA_SOURCE_DIR) + "/config/relay.yaml";
  // The sales webhook is on by default and signs: without its secrets the relay does not start.
  CHECK_THROWS_WITH(load_config(path), Catch::Contains("relay.endpoints[0].secrets"));
  ::setenv("PQA_WEBHOOK_SECRETS", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 1);
  ::setenv("PQA_HUBSPOT_ENABLED", "true", 1);
  auto c = load_config(path);
  ::unsetenv("PQA_HUBSPOT_ENABLED");
  REQUIRE(c.relay.endpoints.size() == 2);  // sales-webhook, hubspot; salesforce is off
  CHECK(c.relay.endpoints[0].name == "sales-webhook");
  CHECK(c.relay.endpoints[0].retry.schedule_ms.size() == 7);
  CHECK(c.relay.endpoints[1].payload.max_records == 100);
  CHECK(c.relay.endpoints[1].rate_limit.requests == 100);
  c = load_config(path);
  CHECK(c.relay.endpoints.size() == 1);
  ::setenv("PQA_WEBHOOK_ENABLED", "false", 1);
  ::unsetenv("PQA_WEBHOOK_SECRETS");  // not needed by a disabled endpoint
  c = load_config(path);
  ::unsetenv("PQA_WEBHOOK_ENABLED");
  CHECK(c.relay.endpoints.empty());
}
