// How transactional calls are retried through an unreachable cluster (kafka_retry.h).
#include <catch2/catch.hpp>

#include "kafka_retry.h"

using namespace pqa::scorer;
using namespace std::chrono_literals;

namespace {
/// A call that fails with `code` `failures` times, then succeeds; counts its calls.
struct FlakyCall {
  rd_kafka_resp_err_t code;
  int failures;
  int calls = 0;
  rd_kafka_error_t* operator()() {
    ++calls;
    return calls <= failures ? rd_kafka_error_new(code, "injected") : nullptr;
  }
};
const kafka::RetryPolicy kFast{2ms, 20ms};
}  // namespace

TEST_CASE("an unreachable cluster is retried, and for a grace period while stopping",
          "[kafka][retry]") {
  std::atomic<bool> stop{false};
  FlakyCall timeouts{RD_KAFKA_RESP_ERR__TIMED_OUT, 3};
  kafka::retry_while_unreachable(
      std::ref(timeouts), "commit_transaction", stop, [] {}, kFast);
  CHECK(timeouts.calls == 4);

  // Stopping (SIGTERM during the last commit): a coordinator found again within the grace
  // commits, instead of an exit with the transaction left open.
  stop = true;
  FlakyCall moved{RD_KAFKA_RESP_ERR__TIMED_OUT, 2};
  kafka::retry_while_unreachable(
      std::ref(moved), "commit_transaction", stop, [] {}, kFast);
  CHECK(moved.calls == 3);

  // An outage that outlasts the grace ends the retries.
  FlakyCall outage{RD_KAFKA_RESP_ERR__TIMED_OUT, 1'000'000};
  CHECK_THROWS_AS(kafka::retry_while_unreachable(
                      std::ref(outage), "commit_transaction", stop, [] {}, kFast),
                  kafka::KafkaError);
  CHECK(outage.calls > 2);
}

TEST_CASE("an error other than an unreachable cluster is not retried", "[kafka][retry]") {
  std::atomic<bool> stop{false};
  FlakyCall refused{RD_KAFKA_RESP_ERR_INVALID_TXN_STATE, 5};
  CHECK_THROWS_AS(kafka::retry_while_unreachable(
                      std::ref(refused), "commit_transaction", stop, [] {}, kFast),
                  kafka::KafkaError);
  CHECK(refused.calls == 1);
}
