// Kafka call helpers: how transactional calls are retried through an unreachable cluster
// (kafka_retry.h), the seek (kafka.h): its timeout and what a refused one reports, and a
// stop's grace for a producer whose records cannot leave (output_producer.h).
#include <catch2/catch.hpp>
#include <limits>
#include <string>

#include "kafka_retry.h"
#include "output_producer.h"

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
void retry(FlakyCall& call, const std::atomic<bool>& stop, kafka::StopDeadline& deadline) {
  kafka::retry_while_unreachable(
      std::ref(call), "commit_transaction", stop, deadline, [] {}, 2ms);
}
}  // namespace

TEST_CASE("an unreachable cluster is retried while running", "[kafka][retry]") {
  std::atomic<bool> stop{false};
  kafka::StopDeadline deadline(20ms);
  FlakyCall timeouts{RD_KAFKA_RESP_ERR__TIMED_OUT, 30};  // longer than the grace: not stopping
  retry(timeouts, stop, deadline);
  CHECK(timeouts.calls == 31);
  CHECK(deadline.timeout_ms(stop, 30'000) == 30'000);
}

TEST_CASE("after SIGTERM, the calls left share one grace period", "[kafka][retry]") {
  std::atomic<bool> stop{true};
  // A second: room for a slow machine's hiccups before the two retries below (4 ms of pauses).
  kafka::StopDeadline deadline(1000ms);
  // A coordinator found again within the grace: the commit goes through.
  FlakyCall moved{RD_KAFKA_RESP_ERR__TIMED_OUT, 2};
  retry(moved, stop, deadline);
  CHECK(moved.calls == 3);
  // Each call's own timeout is cut to what is left, so no call outlives the grace.
  CHECK(deadline.timeout_ms(stop, 30'000) <= 1000);
  // An outage that outlasts the grace ends the retries, and the next call (the abort after
  // a failed commit) gets no grace of its own.
  FlakyCall outage{RD_KAFKA_RESP_ERR__TIMED_OUT, 1'000'000};
  CHECK_THROWS_AS(retry(outage, stop, deadline), kafka::KafkaError);
  FlakyCall abort{RD_KAFKA_RESP_ERR__TIMED_OUT, 1'000'000};
  CHECK_THROWS_AS(retry(abort, stop, deadline), kafka::KafkaError);
  CHECK(abort.calls == 1);
  CHECK(deadline.timeout_ms(stop, 30'000) == 1);
}

TEST_CASE("an error other than an unreachable cluster is not retried", "[kafka][retry]") {
  std::atomic<bool> stop{false};
  kafka::StopDeadline deadline(10s);
  FlakyCall refused{RD_KAFKA_RESP_ERR_INVALID_TXN_STATE, 5};
  CHECK_THROWS_AS(retry(refused, stop, deadline), kafka::KafkaError);
  CHECK(refused.calls == 1);
}

TEST_CASE("a seek waits the milliseconds asked for, also on librdkafka before 2.1.0", "[kafka]") {
  // librdkafka 2.0 (Debian's) took rd_kafka_seek_partitions' timeout as microseconds.
  CHECK(kafka::seek_timeout_argument(30000, 0x020002ff) == 30000000);  // 2.0.2
  CHECK(kafka::seek_timeout_argument(30000, 0x020100ff) == 30000);     // 2.1.0: fixed
  CHECK(kafka::seek_timeout_argument(30000, 0x020300ff) == 30000);
  CHECK(kafka::seek_timeout_argument(3000000, 0x020002ff) == std::numeric_limits<int>::max());
  CHECK(kafka::seek_timeout_argument(0, 0x020002ff) == 0);  // 0: asynchronous, either way
  // This build runs on the librdkafka it is tested with: the argument is what it needs.
  if (rd_kafka_version() < 0x02010000)
    CHECK(kafka::seek_timeout_argument(1, rd_kafka_version()) == 1000);
}

TEST_CASE("a refused seek says which partition and why", "[kafka]") {
  // A consumer with nothing assigned (its bootstrap address is never reached): librdkafka
  // refuses the seek in the partition's element, not in the call's result.
  kafka::Handle consumer =
      kafka::make_client(RD_KAFKA_CONSUMER, kafka::make_conf({{"bootstrap.servers", "127.0.0.1:1"},
                                                              {"group.id", "pqa-test-seek"},
                                                              {"log_level", "0"}}));
  kafka::PartitionList list = kafka::make_partition_list(2);
  rd_kafka_topic_partition_list_add(list.get(), "events", 0)->offset = 5;
  rd_kafka_topic_partition_list_add(list.get(), "events", 3)->offset = 7;
  const kafka::SeekOutcome outcome = kafka::seek(consumer.get(), list.get(), 1000);
  CHECK(outcome.code == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION);
  CHECK(outcome.reason == std::string("events[0]: ") + rd_kafka_err2str(outcome.code));
  try {
    kafka::throw_if(outcome, "seeking a partition back to its position");
    FAIL("no exception");
  } catch (const kafka::KafkaError& e) {
    CHECK(std::string(e.what()) == "seeking a partition back to its position: " + outcome.reason);
  }
  CHECK_NOTHROW(kafka::throw_if(kafka::SeekOutcome{}, "a done seek"));
}

TEST_CASE("a stop while the cluster is unreachable ends within the grace, queue full or not",
          "[kafka]") {
  // Nothing listens on the bootstrap address: records stay queued until message.timeout.ms.
  // Before, a full queue was waited on until then (5 min by default), past the pod's grace.
  KafkaConfig config;
  config.bootstrap_servers = "127.0.0.1:1";
  config.timeout_ms = 30000;
  config.producer_properties = {
      {"queue.buffering.max.messages", "1"}, {"message.timeout.ms", "20000"}, {"log_level", "0"}};
  std::atomic<bool> stop{false};
  OutputProducer producer(config, "", stop, 300ms);
  producer.produce("pqa-test-out", 0, "k1", "v1");  // queued, its delivery pending
  stop = true;
  const auto started = std::chrono::steady_clock::now();
  CHECK_THROWS_AS(producer.produce("pqa-test-out", 0, "k2", "v2"), kafka::KafkaError);
  CHECK_THROWS_AS(producer.flush_all(), kafka::KafkaError);
  // The grace, 300 ms, and the 50 ms turns of the wait, not the records' 20 s timeout.
  CHECK(std::chrono::steady_clock::now() - started < 5s);
}
