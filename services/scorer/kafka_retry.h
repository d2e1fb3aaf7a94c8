// How a transactional producer call that meets an unreachable cluster is retried.
#pragma once

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "kafka.h"
#include "log.h"

namespace pqa::scorer::kafka {

/// Whether a transactional call failed only because the cluster cannot be reached right now:
/// librdkafka flags most such errors retriable, but an EndTxn that meets rejected
/// authentication fails neither retriable nor fatal nor abortable.
inline bool unreachable(const rd_kafka_error_t* error) {
  if (rd_kafka_error_is_retriable(error)) return true;
  if (rd_kafka_error_is_fatal(error) || rd_kafka_error_txn_requires_abort(error)) return false;
  switch (rd_kafka_error_code(error)) {
    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
    case RD_KAFKA_RESP_ERR__SSL:
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
      return true;
    default:
      return false;
  }
}

/// The point past which a stopping process gives up on an unreachable cluster. It is set the
/// first time a call asks while `stop` is set and then shared by every later call, so that the
/// whole of a shutdown's transactional calls (send the offsets, commit; abort) fits in one
/// grace period: a coordinator that moves during the last commit is found again within
/// seconds, and giving up at once would leave the transaction open (exit 3, and the next
/// owner waits for it), while retrying without a bound would outlive the pod's grace period.
class StopDeadline {
 public:
  using Clock = std::chrono::steady_clock;
  explicit StopDeadline(std::chrono::milliseconds grace) : grace_(grace) {}

  /// The timeout for the next call: `normal` while running; while stopping, what is left of
  /// the grace (at least 1 ms, so a call still gets its answer if the cluster is there).
  int timeout_ms(const std::atomic<bool>& stop, int normal) {
    if (!stopping(stop)) return normal;
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - Clock::now()).count();
    return static_cast<int>(std::clamp<long long>(left, 1, normal));
  }
  /// Whether a stopping process is past the deadline (false while running).
  bool passed(const std::atomic<bool>& stop) { return stopping(stop) && Clock::now() >= deadline_; }

 private:
  bool stopping(const std::atomic<bool>& stop) {
    if (!stop) return false;
    if (!started_) {
      deadline_ = Clock::now() + grace_;
      started_ = true;
    }
    return true;
  }
  std::chrono::milliseconds grace_;
  bool started_ = false;  ///< whether `stop` has been seen (and deadline_ set)
  Clock::time_point deadline_{};
};

constexpr std::chrono::milliseconds kRetryPause{500};

/// Calls `call` until it succeeds; an error of an unreachable cluster (an outage, credentials
/// rejected for a while) is logged and retried, any other error is thrown as KafkaError, and
/// so is an unreachable one once a stopping process is past `deadline`. `between_retries`
/// runs before each retry (and may throw to end them: at start-up, rejected credentials are a
/// configuration error).
template <typename Call, typename Check>
void retry_while_unreachable(Call&& call, const char* what, const std::atomic<bool>& stop,
                             StopDeadline& deadline, Check&& between_retries,
                             std::chrono::milliseconds pause = kRetryPause) {
  for (;;) {
    rd_kafka_error_t* error = call();
    if (error == nullptr) return;
    if (!unreachable(error) || deadline.passed(stop)) throw_if(error, what);
    log::warn("producer", std::string(what) + " failed, retrying",
              {{"error", rd_kafka_error_string(error)}});
    rd_kafka_error_destroy(error);
    between_retries();
    std::this_thread::sleep_for(pause);
  }
}

template <typename Call>
void retry_while_unreachable(Call&& call, const char* what, const std::atomic<bool>& stop,
                             StopDeadline& deadline) {
  retry_while_unreachable(std::forward<Call>(call), what, stop, deadline, [] {});
}

}  // namespace pqa::scorer::kafka
