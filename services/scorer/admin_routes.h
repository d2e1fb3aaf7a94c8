// What the admin server serves: /healthz, /readyz, /metrics and /v1/accounts/{id}.
//
// Account queries are answered by the processing loop, the only thread that may touch a
// partition's processor: the handler queues them here and the loop serves the queue between
// batches (AccountQueries::serve). The queue outlives the service, so a query that arrives
// while no service runs (start-up, shutdown) gets a 503 instead of a dangling reference.
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "admin_server.h"
#include "metrics.h"

namespace pqa::scorer {

class AccountQueries {
 public:
  /// At most this many queries wait for the loop; more are answered 503 at once.
  static constexpr std::size_t kMaxPending = 1024;

  /// `wait`: how long a query waits for the loop before the server's request deadline
  /// answers it (admin.request_timeout_ms); the loop skips a query older than that.
  explicit AccountQueries(std::chrono::milliseconds wait = std::chrono::milliseconds(5000))
      : wait_(wait) {}

  /// Queues a query for the loop; answered 503 at once when no loop is serving or too many
  /// wait already.
  void submit(std::string account, Respond respond);
  /// The loop is serving (true) or stops serving (false: pending queries are answered 503).
  void set_serving(bool serving);
  /// Answers every queued query with `answer(account)`; called by the processing loop.
  void serve(const std::function<HttpResponse(const std::string&)>& answer);

 private:
  struct Pending {
    std::string account;
    Respond respond;
    std::chrono::steady_clock::time_point deadline;
  };
  const std::chrono::milliseconds wait_;
  std::mutex mutex_;
  std::deque<Pending> pending_;
  bool serving_ = false;
};

/// Percent-decodes a URL path segment; nullopt if an escape is malformed.
std::optional<std::string> percent_decode(std::string_view segment);

/// The admin routes. `metrics` and `queries` must outlive the handler.
HttpHandler make_admin_handler(ServiceMetrics& metrics, AccountQueries& queries);

}  // namespace pqa::scorer
