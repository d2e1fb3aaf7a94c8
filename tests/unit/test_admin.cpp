// The admin routes and metrics, without a socket: what each route answers, how account
// queries wait for the processing loop, and the metrics' exposition.
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <catch2/catch.hpp>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "admin_routes.h"
#include "group_owners.h"
#include "metrics.h"
#include "processor.h"

using namespace pqa::scorer;

namespace {

struct Answer {
  std::optional<HttpResponse> response;
  Respond respond() {
    return [this](HttpResponse r) { response = std::move(r); };
  }
};

HttpResponse get(const HttpHandler& handler, const std::string& target) {
  Answer a;
  handler(HttpRequest{"GET", target}, a.respond());
  REQUIRE(a.response);
  return *a.response;
}

}  // namespace

TEST_CASE("percent_decode decodes escapes and refuses malformed ones", "[admin]") {
  CHECK(percent_decode("acme") == "acme");
  CHECK(percent_decode("acme%20corp") == "acme corp");
  CHECK(percent_decode("%2F%2f") == "//");
  CHECK(percent_decode("%e2%82%AC") == "\xe2\x82\xac");
  CHECK_FALSE(percent_decode("%"));
  CHECK_FALSE(percent_decode("%4"));
  CHECK_FALSE(percent_decode("abc%zz"));
}

TEST_CASE("Probes: /healthz always, /readyz only when ready", "[admin]") {
  ServiceMetrics metrics("v1", "exactly_once");
  AccountQueries queries;
  const auto handler = make_admin_handler(metrics, queries);
  CHECK(get(handler, "/healthz").status == 200);
  CHECK(get(handler, "/readyz").status == 503);
  metrics.set_ready(true);
  CHECK(get(handler, "/readyz").status == 200);
  CHECK(get(handler, "/readyz?verbose=1").status == 200);
  CHECK(get(handler, "/nope").status == 404);
  CHECK(get(handler, "/v1/accounts/").status == 400);
  CHECK(get(handler, "/v1/accounts/a%zz").status == 400);
  CHECK(get(handler, "/v1/accounts/a/b").status == 400);
}

TEST_CASE("/readyz turns 503 while the processing loop is stuck, and back once it turns",
          "[admin][slow]") {
  // A loop stuck in a commit retried through an outage, or in a long restore, must take the
  // pod out of the Service (docs/operations.md, /readyz). Waits out the real 5 s bound.
  ServiceMetrics metrics("v1", "exactly_once");
  AccountQueries queries;
  const auto handler = make_admin_handler(metrics, queries);
  metrics.set_ready(true);
  metrics.loop_turned();
  CHECK(get(handler, "/readyz").status == 200);
  std::this_thread::sleep_for(ServiceMetrics::kMaxLoopStall + std::chrono::milliseconds(300));
  CHECK(get(handler, "/readyz").status == 503);
  CHECK(metrics.exposition().find("\npqa_ready 0") != std::string::npos);
  CHECK(get(handler, "/healthz").status == 200);  // alive all the same: not restarted
  metrics.loop_turned();
  CHECK(get(handler, "/readyz").status == 200);
}

TEST_CASE("/metrics serves the text format with the service's series", "[admin]") {
  ServiceMetrics metrics("v1", "at_least_once");
  AccountQueries queries;
  const auto handler = make_admin_handler(metrics, queries);
  metrics.count_dead_letter();
  metrics.partition(3);
  metrics.set_consumer_lag(3, 42);
  metrics.partition(4).restore_remaining->Set(10);  // restoring: no lag figure yet
  const auto r = get(handler, "/metrics");
  CHECK(r.status == 200);
  CHECK(r.content_type.find("version=0.0.4") != std::string::npos);
  CHECK(r.body.find("pqa_dead_letter_events_total 1") != std::string::npos);
  CHECK(r.body.find("pqa_consumer_lag_records{partition=\"3\"} 42") != std::string::npos);
  CHECK(r.body.find("pqa_restore_remaining_records{partition=\"4\"} 10") != std::string::npos);
  CHECK(r.body.find("lag_records{partition=\"4\"}") == std::string::npos);
  CHECK(r.body.find("pqa_event_time_lag_seconds{partition=\"4\"}") == std::string::npos);
  CHECK(r.body.find("pqa_build_info{model_version=\"v1\",processing=\"at_least_once\"} 1") !=
        std::string::npos);
  CHECK(r.body.find("process_resident_memory_bytes ") != std::string::npos);
  metrics.remove_partition(3);
  CHECK(get(handler, "/metrics").body.find("partition=\"3\"") == std::string::npos);
}

TEST_CASE("Processor deltas are added once, by call type and reason", "[admin]") {
  ServiceMetrics metrics("v1", "exactly_once");
  ProcessorStats before, after;
  after.processed_by_type = {5, 2, 1};
  after.ignored = 3;
  after.rejected = 2;
  after.rejected_by_reason[static_cast<std::size_t>(pqa::rollup::DecodeError::kMalformedJson)] = 2;
  metrics.add_processor_delta(after, before);
  metrics.add_processor_delta(after, after);  // nothing new
  CHECK(metrics.events_consumed() == 13);
  CHECK(metrics.events_rejected() == 2);
  const auto text = metrics.exposition();
  CHECK(text.find("pqa_events_consumed_total{outcome=\"processed\",type=\"track\"} 5") !=
        std::string::npos);
  CHECK(text.find("pqa_decode_errors_total{reason=\"malformed_json\"} 2") != std::string::npos);
}

TEST_CASE("HistogramBatch adds what Observe would have, bucket by bucket", "[admin]") {
  const auto bounds = ServiceMetrics::event_duration_bounds();
  prometheus::Registry registry;
  auto& family = prometheus::BuildHistogram().Name("h").Help("h").Register(registry);
  auto& observed = family.Add({{"how", "observe"}}, bounds);
  auto& batched = family.Add({{"how", "batch"}}, bounds);
  HistogramBatch batch(bounds);
  // Values on, between, below and above the bounds.
  for (double v : {0.0, 1e-6, 2e-6, 4e-6, 3e-5, 0.5, 10.0, bounds.back(), bounds.back() * 2}) {
    observed.Observe(v);
    batch.observe(v);
  }
  batch.flush_to(batched);
  batch.flush_to(batched);  // nothing left: adds nothing
  const auto a = observed.Collect().histogram;
  const auto b = batched.Collect().histogram;
  CHECK(b.sample_count == 9);
  CHECK(b.sample_count == a.sample_count);
  CHECK(b.sample_sum == Approx(a.sample_sum));
  REQUIRE(b.bucket.size() == a.bucket.size());
  for (std::size_t i = 0; i < a.bucket.size(); ++i) {
    INFO("bucket le=" << a.bucket[i].upper_bound);
    CHECK(b.bucket[i].cumulative_count == a.bucket[i].cumulative_count);
  }
}

TEST_CASE("Account queries wait for the loop, and get 503 when no loop serves", "[admin]") {
  ServiceMetrics metrics("v1", "exactly_once");
  metrics.set_ready(true);
  AccountQueries queries;
  const auto handler = make_admin_handler(metrics, queries);
  CHECK(get(handler, "/v1/accounts/acme").status == 503);  // not serving yet

  queries.set_serving(true);
  Answer pending;
  handler(HttpRequest{"GET", "/v1/accounts/acme%20corp"}, pending.respond());
  CHECK_FALSE(pending.response);  // queued for the loop
  std::string asked;
  queries.serve([&](const std::string& account) {
    asked = account;
    HttpResponse r;
    r.body = "{}";
    return r;
  });
  CHECK(asked == "acme corp");
  REQUIRE(pending.response);
  CHECK(pending.response->status == 200);

  Answer dropped;
  handler(HttpRequest{"GET", "/v1/accounts/x"}, dropped.respond());
  queries.set_serving(false);  // the loop stops: what is queued is answered, not lost
  REQUIRE(dropped.response);
  CHECK(dropped.response->status == 503);
  CHECK(metrics.exposition().find("pqa_http_requests_total{code=\"503\",route=\"accounts\"} 2") !=
        std::string::npos);
}

TEST_CASE("Account ids that are not UTF-8 text of an id's length are refused", "[admin]") {
  ServiceMetrics metrics("v1", "exactly_once");
  metrics.set_ready(true);
  AccountQueries queries;
  queries.set_serving(true);
  const auto handler = make_admin_handler(metrics, queries);
  CHECK(get(handler, "/v1/accounts/%FF").status == 400);   // not UTF-8
  CHECK(get(handler, "/v1/accounts/a%C3").status == 400);  // a character cut short
  CHECK(get(handler, "/v1/accounts/" + std::string(1025, 'a')).status == 400);
  Answer accepted;  // a multi-byte character whole is an id like any other
  handler(HttpRequest{"GET", "/v1/accounts/caf%C3%A9"}, accepted.respond());
  CHECK_FALSE(accepted.response);  // queued for the loop
  queries.set_serving(false);
}

TEST_CASE(
    "Account queries are answered 503 at once while not ready, when too many wait, and "
    "not computed past their deadline",
    "[admin]") {
  ServiceMetrics metrics("v1", "exactly_once");
  AccountQueries queries(std::chrono::milliseconds(0));  // every query is past its deadline
  queries.set_serving(true);
  const auto handler = make_admin_handler(metrics, queries);
  // Restoring: not parked (it would hold a connection the probes need), told when to retry.
  const auto busy = get(handler, "/v1/accounts/acme");
  CHECK(busy.status == 503);
  CHECK(busy.headers == std::vector<std::pair<std::string, std::string>>{{"Retry-After", "5"}});

  metrics.set_ready(true);
  Answer late;
  handler(HttpRequest{"GET", "/v1/accounts/acme"}, late.respond());
  CHECK_FALSE(late.response);
  int computed = 0;
  queries.serve([&](const std::string&) {
    ++computed;
    return HttpResponse{};
  });
  CHECK(computed == 0);  // the server answered it already: nothing read for nobody
  REQUIRE(late.response);
  CHECK(late.response->status == 503);
  CHECK(metrics.exposition().find("pqa_http_requests_total{code=\"503\",route=\"accounts\"} 2") !=
        std::string::npos);

  std::vector<Answer> waiting(AccountQueries::kMaxPending + 1);
  for (auto& w : waiting) handler(HttpRequest{"GET", "/v1/accounts/x"}, w.respond());
  for (std::size_t i = 0; i < AccountQueries::kMaxPending; ++i) CHECK_FALSE(waiting[i].response);
  REQUIRE(waiting.back().response);  // one too many: refused at once
  CHECK(waiting.back().response->status == 503);
  queries.set_serving(false);
}

namespace {
/// A ConsumerProtocol Assignment, big-endian, as brokers hand it to group members.
std::string assignment(int version,
                       const std::vector<std::pair<std::string, std::vector<int>>>& t) {
  std::string b;
  const auto be = [&b](std::int64_t v, int width) {
    for (int i = width - 1; i >= 0; --i) b += static_cast<char>((v >> (8 * i)) & 0xff);
  };
  be(version, 2);
  be(static_cast<std::int64_t>(t.size()), 4);
  for (const auto& [name, partitions] : t) {
    be(static_cast<std::int64_t>(name.size()), 2);
    b += name;
    be(static_cast<std::int64_t>(partitions.size()), 4);
    for (int p : partitions) be(p, 4);
  }
  be(-1, 4);  // null user data
  return b;
}
}  // namespace

TEST_CASE("Group members' assignments decode to the input topic's partitions", "[admin]") {
  const auto v1 = assignment(1, {{"other", {0, 1}}, {"events", {3, 7, 11}}});
  CHECK(assigned_partitions(v1, "events") == std::vector<int>{3, 7, 11});
  CHECK(assigned_partitions(v1, "missing") == std::vector<int>{});
  CHECK(assigned_partitions(assignment(0, {{"events", {0}}}), "events") == std::vector<int>{0});
  // Truncated or garbage assignments are refused, not misread.
  for (std::size_t cut = 0; cut < v1.size() - 4; ++cut)  // all but the user data
    CHECK_FALSE(assigned_partitions(v1.substr(0, cut), "events"));
  CHECK_FALSE(assigned_partitions(std::string(3, '\xff'), "events"));
}
