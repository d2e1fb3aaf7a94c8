// The service's one Kafka producer: signals, scores, changelog and dead letters all go through
// it, inside a transaction in exactly-once mode. Tracks delivery so that a commit knows
// whether everything it covers was written, and where each changelog partition ended.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config_loader.h"
#include "kafka.h"
#include "kafka_retry.h"

namespace pqa::scorer {

using Headers = std::vector<std::pair<std::string, std::string>>;

/// The transaction.timeout.ms an exactly-once producer of `config` runs with: the configured
/// value (producer_properties over properties) or the service's default.
long long transaction_timeout_ms(const KafkaConfig& config);

class OutputProducer {
 public:
  /// `transactional`: exactly-once mode (init_transactions is called here, fencing any
  /// earlier producer with the same transactional.id).
  /// After `stop` is set, the calls left share `stop_grace` (kafka_retry.h StopDeadline).
  OutputProducer(const KafkaConfig& config, const std::string& transactional_id,
                 const std::atomic<bool>& stop,
                 std::chrono::milliseconds stop_grace = std::chrono::seconds(10));
  /// Destroys the client before the members its callbacks write to (see the definition).
  ~OutputProducer();
  OutputProducer(const OutputProducer&) = delete;
  OutputProducer& operator=(const OutputProducer&) = delete;

  /// Queues one record; waits (serving delivery reports) while librdkafka's queue is full,
  /// and throws KafkaError if it still is once a stop's grace has passed.
  /// partition -1: the producer's partitioner on the key.
  /// timestamp_ms 0: librdkafka stamps the record with the current time.
  void produce(const std::string& topic, int partition, std::string_view key,
               std::string_view value, const Headers& headers = {}, std::int64_t timestamp_ms = 0);

  bool transactional() const { return transactional_; }
  /// The largest record the producer sends (message.max.bytes: key, value and headers).
  std::size_t max_record_bytes() const { return max_record_bytes_; }
  void begin_transaction();
  /// How long the open transaction has been open (zero when none is).
  std::chrono::milliseconds transaction_age() const;
  /// Commits the open transaction, with `offsets` of `consumer`'s group. Retries while the
  /// error is retriable (a broker outage); throws KafkaError when the transaction must be
  /// aborted (abortable()) or the producer is dead (fatal()).
  void commit_transaction(rd_kafka_topic_partition_list_t* offsets, rd_kafka_t* consumer);
  /// Aborts the open transaction (after an abortable error); throws if that fails.
  void abort_transaction();
  /// Whether librdkafka has put the producer in its fatal state for a reason a new producer
  /// cures, as opposed to a newer instance with the same transactional.id (a zombie must
  /// stop). Curable: an abort that the coordinator answered INVALID_TXN_STATE after an
  /// outage (librdkafka issue 4849), and "fenced" while the open transaction is older than
  /// transaction.timeout.ms: the coordinator aborted it itself and bumped the epoch, which
  /// librdkafka 2.0 cannot tell from a newer instance (KIP-588 lets newer clients recover).
  bool failed_replaceably() const;
  /// Fatal, and not curable by a new producer: a newer instance has the transactional.id.
  bool fenced_by_newer_instance() const;
  /// librdkafka's reason for the fatal state; empty when the producer is not in it.
  std::string fatal_error() const;
  /// Destroys the client and creates it anew with the same configuration; init_transactions
  /// (same transactional.id) then aborts whatever the coordinator still holds open. Records
  /// not yet delivered are dropped: the caller rewinds to its last commit.
  void replace();
  /// At-least-once: waits until every queued record is delivered (retrying through outages);
  /// throws KafkaError if any record since the last call failed for good.
  void flush_all();
  /// Serves delivery reports without blocking.
  void poll() { rd_kafka_poll(handle_.get(), 0); }

  /// The highest changelog offset delivered per partition since the last call (cleared).
  std::map<int, std::int64_t> take_changelog_offsets();

  rd_kafka_t* handle() const { return handle_.get(); }

  /// Throws ConfigException (key kafka.properties) if a broker rejected the client's
  /// credentials (SASL) or its TLS handshake failed: configuration errors that retrying cannot
  /// cure, unlike an unreachable cluster. Serves pending callbacks first.
  void throw_if_security_failure();

 private:
  static void on_delivery(rd_kafka_t*, const rd_kafka_message_t* message, void* opaque);
  static void on_error(rd_kafka_t*, int err, const char* reason, void* opaque);
  void check_delivery_errors();
  /// Creates the client (and, when transactional, initialises its transactions). At start-up
  /// a rejected credential or certificate throws ConfigException; later it is retried.
  void create_client(bool at_start_up);

  kafka::Properties properties_;
  std::string changelog_topic_;
  bool transactional_;
  std::chrono::milliseconds timeout_;
  std::chrono::milliseconds transaction_timeout_;  ///< transaction.timeout.ms, as configured
  std::size_t max_record_bytes_;                   ///< message.max.bytes, as configured
  /// When begin_transaction() last succeeded; nullopt when no transaction is open.
  std::optional<std::chrono::steady_clock::time_point> transaction_began_;
  const std::atomic<bool>& stop_;
  /// After SIGTERM, the calls left (transactional calls, a full queue, a flush) share one
  /// grace period (kafka_retry.h), so that a stop during an outage ends in bounded time.
  kafka::StopDeadline stop_deadline_;
  kafka::Handle handle_;
  std::map<int, std::int64_t> changelog_offsets_;
  std::optional<std::string> delivery_error_;    ///< first failure since the last check
  std::optional<std::string> security_failure_;  ///< first SASL or TLS failure (on_error)
};

}  // namespace pqa::scorer
