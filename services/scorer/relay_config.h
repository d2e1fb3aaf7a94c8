// The `relay:` section of the configuration: where `pqa-scorer relay` delivers signals and how
// (docs/relay.md). Parsed by config_loader.cpp with the rest of the one config schema.
#pragma once

#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace pqa::scorer {

/// Which signals an endpoint takes. An empty set matches any value; a signal matches a route
/// when every non-empty set holds the signal's value, and an endpoint when any route matches.
struct RelayRoute {
  std::set<std::string>
      kinds;  ///< threshold_crossed, seat_expansion, breadth_expansion, routing_changed
  std::set<std::string> bands;       ///< cold, nurture, qualified, hot
  std::set<std::string> directions;  ///< up, down (threshold_crossed only)
  std::set<std::string> routings;    ///< none, self_serve, pls_assist, full_sales, enablement
};

/// How the request body is made. Standard Webhooks: one signal per request in the
/// {"type","timestamp","data"} envelope. Template: field updates, several accounts per request,
/// the newest signal of each account (queued updates of an account coalesce).
struct PayloadFormat {
  enum class Kind { kStandardWebhooks, kTemplate };
  Kind kind = Kind::kStandardWebhooks;
  std::string preset;  ///< standard_webhooks, hubspot, salesforce or template
  /// Template only: the request body, where {{records}} stands for the records joined by ','.
  std::string body;
  /// Template only: one record; {{name}} placeholders become JSON values (relay_payload.h).
  std::string record;
  std::size_t max_records = 1;  ///< accounts per request
};

/// Retries of a failed delivery: the n-th retry waits schedule_ms[n-1] (the last entry
/// repeats), times a random factor in [1 - jitter, 1 + jitter]; a Retry-After from the
/// endpoint replaces it. After max_attempts attempts, or max_age_ms after the signal reached
/// the relay, the signal goes to the dead-letter topic with the last error.
struct RetryPolicy {
  std::vector<std::int64_t> schedule_ms{5'000,      300'000,    1'800'000, 7'200'000,
                                        18'000'000, 36'000'000, 36'000'000};
  double jitter = 0.2;
  int max_attempts = 8;
  std::int64_t max_age_ms = 28LL * 3600 * 1000;
};

/// Opens after `failure_threshold` consecutive failed requests: no request for open_ms, then
/// one probe (half-open) whose outcome closes it or opens it again.
struct BreakerPolicy {
  int failure_threshold = 5;
  std::int64_t open_ms = 30'000;
};

/// At most `requests` requests per `per_ms` (a token bucket of that size); 0: unlimited.
struct RateLimit {
  double requests = 0;
  std::int64_t per_ms = 1'000;
};

struct ParsedUrl {
  bool tls = false;
  std::string host;
  std::string port;    ///< "443" / "80" when the URL has none
  std::string target;  ///< path and query, "/" at least
};

struct EndpointConfig {
  std::string name;  ///< unique; the `endpoint` label of the metrics
  std::string url;
  ParsedUrl parsed;
  std::string method = "POST";
  PayloadFormat payload;
  std::vector<RelayRoute> routes;    ///< empty: every signal
  std::vector<std::string> secrets;  ///< whsec_ keys (Standard Webhooks); empty: unsigned
  /// A Standard Webhooks endpoint without secrets is refused unless this says the receiver
  /// does not check signatures: a missing secret must not quietly turn signing off.
  bool allow_unsigned = false;
  std::vector<std::pair<std::string, std::string>> headers;  ///< e.g. Authorization
  int timeout_ms = 10'000;  ///< connect, TLS handshake, request and response together
  int max_in_flight = 4;    ///< concurrent requests (and kept-alive connections)
  RateLimit rate_limit;
  RetryPolicy retry;
  BreakerPolicy breaker;
  bool tls_verify = true;  ///< certificate and host name; off only for tests of the relay itself
  std::string ca_file;     ///< PEM bundle; empty: the system's trust store
};

struct RelayConfig {
  std::string group_id = "pqa-relay";  ///< its own consumer group on the signals topic
  std::string dead_letter_topic = "pqa-relay-dead-letter";
  /// Signals read but not yet finished (delivered or dead-lettered) above which the relay
  /// pauses the consumer, resuming below 90 % of it: the memory bound during an outage.
  std::size_t max_pending_signals = 100'000;
  int commit_interval_ms = 1'000;
  int drain_timeout_ms = 10'000;  ///< on SIGTERM, how long in-flight requests may finish
  std::uint64_t jitter_seed = 0;  ///< 0: from the clock (tests set it)
  std::vector<EndpointConfig> endpoints;
};

/// Parses http(s)://host[:port][/path]; throws std::invalid_argument with the problem.
ParsedUrl parse_url(const std::string& url);

}  // namespace pqa::scorer
