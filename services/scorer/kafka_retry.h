// How a transactional producer call that meets an unreachable cluster is retried.
#pragma once

#include <librdkafka/rdkafka.h>

#include <atomic>
#include <chrono>
#include <optional>
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

struct RetryPolicy {
  std::chrono::milliseconds pause{500};  ///< between attempts
  /// Once `stop` is set, how long an unreachable cluster is still retried: a coordinator that
  /// moves during the last commit of a shutdown is found again within seconds, and giving up
  /// at once would leave the transaction open (exit 3, and the next owner waits for it). Well
  /// inside the pod's grace period, which must also cover the calls' own timeouts.
  std::chrono::milliseconds stop_grace{10'000};
};

/// Calls `call` until it succeeds; an error of an unreachable cluster (an outage, credentials
/// rejected for a while) is logged and retried, any other error is thrown as KafkaError, and
/// so is an unreachable one once `stop` has been set for longer than the policy's grace.
/// `between_retries` runs before each retry (and may throw to end them: at start-up, rejected
/// credentials are a configuration error).
template <typename Call, typename Check>
void retry_while_unreachable(Call&& call, const char* what, const std::atomic<bool>& stop,
                             Check&& between_retries, RetryPolicy policy = {}) {
  std::optional<std::chrono::steady_clock::time_point> stopping_since;
  for (;;) {
    rd_kafka_error_t* error = call();
    if (error == nullptr) return;
    const auto now = std::chrono::steady_clock::now();
    if (stop && !stopping_since) stopping_since = now;
    const bool grace_over = stopping_since && now - *stopping_since >= policy.stop_grace;
    if (!unreachable(error) || grace_over) throw_if(error, what);
    log::warn("producer", std::string(what) + " failed, retrying",
              {{"error", rd_kafka_error_string(error)}});
    rd_kafka_error_destroy(error);
    between_retries();
    std::this_thread::sleep_for(policy.pause);
  }
}

template <typename Call>
void retry_while_unreachable(Call&& call, const char* what, const std::atomic<bool>& stop) {
  retry_while_unreachable(std::forward<Call>(call), what, stop, [] {});
}

}  // namespace pqa::scorer::kafka
