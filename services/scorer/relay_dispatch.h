// The relay's delivery decisions for one endpoint, as a pure state machine: signals go in,
// request batches come out when they may be sent, attempt results go in, finished signals
// (delivered, dead-lettered, superseded) come out. Time and randomness come in as values;
// there is no I/O, clock or thread here, so every rule is unit-tested deterministically
// (tests/unit/test_relay.cpp).
//
// Rules:
// - Per-account order: an account has at most one request in flight per endpoint, and its
//   signals leave in the order they came (a retry blocks the account's later signals).
// - Coalescing (field-update endpoints): an account's queued update absorbs newer signals,
//   which replace it; an update that failed (retryably) while a newer one waits is superseded
//   by it. A refused update (permanent 4xx) is dead-lettered alone: the newer one is tried.
// - Retries: backoff schedule with jitter, Retry-After honoured (up to max_age: a receiver
//   cannot park the relay for a year), dead letter after
//   max_attempts or max_age; 4xx other than 401/403/408/409/425/429 is permanent (the request
//   is wrong, repeating it cannot help) and dead-letters at once; 410 disables the endpoint.
// - Slow down: 429/502/504 halve the endpoint's allowed concurrency and rate (recovering
//   additively with each success), and a Retry-After pauses the whole endpoint until then.
// - Circuit breaker: opens after failure_threshold consecutive failures for open_ms, then
//   lets one probe through (half-open).
// - Rate limit: a token bucket of rate_limit.requests per rate_limit.per_ms.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "relay_config.h"
#include "relay_payload.h"

namespace pqa::scorer::relay {

using TimeMs = std::int64_t;

/// What one HTTP attempt came to. status 0: no response (connect error, timeout, closed).
struct AttemptResult {
  int status = 0;
  std::string error;                     ///< a transport error, or "HTTP 500: <start of the body>"
  std::optional<TimeMs> retry_after_ms;  ///< from a Retry-After header
  /// A 2xx whose body says some records failed (crm_partial_failure): retried, the whole batch
  /// (a field update applied twice is the same update), and dead-lettered once exhausted.
  bool partial_failure = false;
};

enum class Finish { kDelivered, kDeadLettered, kSuperseded };

/// Signals whose delivery to this endpoint is over.
struct Finished {
  std::vector<SignalPtr> signals;
  Finish outcome = Finish::kDelivered;
  std::string error;  ///< why it was dead-lettered
  int attempts = 0;
};

/// One request to send: the signals (one per account; one in all for Standard Webhooks).
struct Batch {
  std::uint64_t id = 0;
  std::vector<SignalPtr> signals;
  int attempt = 1;  ///< of the oldest item in it (1: first try)
};

enum class BreakerState { kClosed = 0, kHalfOpen = 1, kOpen = 2 };

/// Classifies a result (the metrics' `outcome` label).
enum class AttemptClass {
  kSuccess,         // 2xx
  kPermanent,       // 4xx that repeating cannot fix
  kGone,            // 410: the endpoint is disabled
  kSlowDown,        // 429, 502, 504
  kRetryable,       // other 5xx, and 401/403/408/409/425
  kTransportError,  // no response
};
AttemptClass classify(const AttemptResult& result);
const char* to_string(AttemptClass c);

/// Parses a Retry-After value (delay-seconds or an IMF-fixdate) into a delay from `now_ms`
/// (wall clock, for the date form); nullopt when it is neither.
std::optional<TimeMs> parse_retry_after(std::string_view value, TimeMs now_unix_ms);

struct EndpointPolicy {
  bool coalesce = false;  ///< field updates: newest per account wins
  std::size_t max_records = 1;
  int max_in_flight = 4;
  RateLimit rate_limit;
  RetryPolicy retry;
  BreakerPolicy breaker;
};

class EndpointQueue {
 public:
  EndpointQueue(EndpointPolicy policy, std::uint64_t jitter_seed);

  /// Queues a signal. Returns it at once as dead-lettered when the endpoint is disabled.
  std::vector<Finished> enqueue(SignalPtr signal, TimeMs now);

  /// The next request to send now, if any may be: a ready account exists, a concurrency slot
  /// and a rate-limit token are free, and the breaker allows it.
  std::optional<Batch> take_batch(TimeMs now);

  /// Records the result of a batch taken earlier; unknown ids (forgotten) are ignored.
  std::vector<Finished> complete(std::uint64_t batch_id, const AttemptResult& result, TimeMs now);

  /// When take_batch may next return something (nullopt: not before a new signal or a result).
  std::optional<TimeMs> next_wakeup(TimeMs now) const;

  /// Drops every signal read from `partition` (its assignment was revoked: the next owner
  /// reads them again). A request in flight cannot be recalled: its account stays blocked
  /// until it completes, so that signals read again after a re-assignment still leave after
  /// it, and its result finishes only the signals of other partitions it carries.
  void forget_partition(int partition, TimeMs now);

  std::size_t queued_signals() const { return queued_signals_; }
  int in_flight() const { return static_cast<int>(in_flight_.size()); }
  BreakerState breaker_state(TimeMs now) const;
  bool disabled() const { return disabled_; }
  /// The effective concurrency and rate, as a fraction of the configured (slow-down state).
  double slow_down_factor() const { return slow_factor_; }

 private:
  struct Item {
    /// Oldest first; coalesced: the last is the one sent. Empty: every signal of the item in
    /// flight was forgotten (forget_partition), only its completion is awaited.
    std::vector<SignalPtr> signals;
    int attempts = 0;
    TimeMs enqueued_at = 0;
    TimeMs not_before = 0;
    std::string last_error;
  };
  struct Account {
    std::deque<Item> items;
    bool in_flight = false;
    std::uint64_t batch = 0;  ///< the batch carrying the head while in_flight
    bool scheduled = false;   ///< in ready_ or delayed_
  };
  struct InFlight {
    std::vector<std::string> accounts;
  };

  void schedule(const std::string& account_id, Account& account, TimeMs now);
  void promote_due(TimeMs now);
  bool slot_free(TimeMs now) const;
  void refill_tokens(TimeMs now);
  double effective_rate() const;
  TimeMs retry_delay(const Item& item, const AttemptResult& result);
  TimeMs retry_after_capped(TimeMs retry_after) const;
  void fail_item(const std::string& account_id, Account& account, const AttemptResult& result,
                 AttemptClass cls, TimeMs now, std::vector<Finished>& out);
  void disable(std::string reason, std::vector<Finished>& out);
  void on_breaker_result(bool success, TimeMs now);
  void erase_if_idle(const std::string& account_id);

  EndpointPolicy policy_;
  std::mt19937_64 rng_;
  std::unordered_map<std::string, Account> accounts_;
  std::deque<std::string> ready_;               ///< accounts whose head may go now
  std::multimap<TimeMs, std::string> delayed_;  ///< accounts waiting for a retry time
  std::unordered_map<std::uint64_t, InFlight> in_flight_;
  std::uint64_t next_batch_id_ = 1;
  std::size_t queued_signals_ = 0;

  // Endpoint health.
  bool disabled_ = false;
  std::string disabled_reason_;
  int consecutive_failures_ = 0;
  TimeMs open_until_ = 0;         ///< breaker open before this
  bool breaker_tripped_ = false;  ///< opened and not yet closed by a successful probe
  bool probe_in_flight_ = false;
  TimeMs paused_until_ = 0;  ///< Retry-After on the endpoint as a whole
  double slow_factor_ = 1.0;
  double tokens_ = 0;
  TimeMs tokens_at_ = -1;
};

/// The consumer's back-pressure: paused once `max_pending` signals are read and unfinished,
/// resumed below 90 % of it (hysteresis; a bound of 1 resumes once nothing is pending).
inline bool should_pause(std::size_t unfinished, std::size_t max_pending) {
  return unfinished >= max_pending;
}
inline bool may_resume(std::size_t unfinished, std::size_t max_pending) {
  return unfinished * 10 < max_pending * 9;
}

/// Where the consumer may commit: per partition, the offsets read and not yet finished.
/// The committable position is the smallest unfinished offset, or one past the last read.
class OffsetTracker {
 public:
  /// A new assignment of `partition`; returns its generation (stamped on the signals read).
  std::uint64_t assign(int partition);
  void revoke(int partition);
  /// A signal was read. Offsets arrive in increasing order per partition.
  void read(int partition, std::int64_t offset);
  /// Its obligations are over; ignored for a generation no longer current.
  void finish(int partition, std::uint64_t generation, std::int64_t offset);
  /// Partitions whose committable position moved since the last call, with that position.
  std::vector<std::pair<int, std::int64_t>> take_commits();
  /// A commit of `offset` for `partition` failed: the next take_commits hands it out again.
  void commit_failed(int partition, std::int64_t offset);
  std::optional<std::int64_t> position(int partition) const;
  std::size_t unfinished() const;
  std::vector<int> partitions() const;

 private:
  struct Partition {
    std::uint64_t generation = 0;
    std::set<std::int64_t> unfinished;
    std::int64_t next = -1;       ///< one past the last offset read; -1: none read
    std::int64_t committed = -1;  ///< last position handed out by take_commits
  };
  std::map<int, Partition> partitions_;
  std::uint64_t next_generation_ = 1;
};

}  // namespace pqa::scorer::relay
