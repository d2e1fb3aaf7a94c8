// Loads config/scorer.yaml into the one config schema. Every problem names its key.
#pragma once

#include <map>
#include <stdexcept>
#include <string>

#include "admin_server.h"
#include "commit_cadence.h"
#include "pqa/rollup/config.h"
#include "processor.h"
#include "relay_config.h"
#include "state_store.h"

namespace pqa::scorer {

/// Delivery guarantee of the streaming service.
enum class Processing { kExactlyOnce, kAtLeastOnce };

/// The `kafka:` section: where the streaming service reads and writes.
struct KafkaConfig {
  std::string bootstrap_servers;  ///< required by `run`
  std::string group_id = "pqa-scorer";
  std::string group_instance_id;  ///< static membership when set
  std::string transactional_id;   ///< default: <group_id>-<group_instance_id or host name>
  std::string input_topic = "product-events";
  std::string signals_topic = "pqa-signals";
  std::string scores_topic = "pqa-scores";
  std::string changelog_topic = "pqa-scorer-changelog";
  std::string dead_letter_topic = "pqa-dead-letter";
  bool create_topics = false;
  /// Whether start-up checks that existing compacted outputs are compacted (DescribeConfigs).
  /// Not a YAML key: only the demo turns it off, as librdkafka's in-process mock cluster does
  /// not answer DescribeConfigs (nor compacts).
  bool check_topic_configs = true;
  int replication_factor = 3;  ///< of topics the service creates
  Processing processing = Processing::kExactlyOnce;
  /// Exactly once: a signal waits up to one interval plus one commit (~30 ms), so 80 ms (not
  /// Kafka Streams' 100) keeps the p99 under 150 ms; measured in bench/RESULTS.md §5h.
  int commit_interval_ms = 80;
  CatchUpOptions catch_up;  ///< a longer interval while the input is far behind
  std::size_t max_batch_events = 10'000;
  int timeout_ms = 30'000;  ///< metadata, transaction and restore calls
  /// librdkafka properties: for every client, then per client kind (overriding).
  std::map<std::string, std::string> properties, consumer_properties, producer_properties;
  /// Over consumer_properties, for the consumer that restores state from the changelog only
  /// (as Kafka Streams' `restore.consumer.` prefix): e.g. smaller fetches, or a client.id a
  /// broker quota throttles so that restores leave room for processing.
  std::map<std::string, std::string> restore_consumer_properties;
};

/// The `service:` section.
struct ServiceOptions {
  std::string state_dir = "/var/lib/pqa-scorer";
  std::string log_level = "info";  ///< debug, info, warn, error
  /// Wall-clock progress: a partition with no event for this long has its clock moved to
  /// the wall clock minus this, so silent accounts cross down in production. 0: off.
  int idle_advance_ms = 60'000;
};

/// The admin HTTP server of `run` (probes, metrics, account queries).
struct AdminConfig {
  bool enabled = true;
  AdminServerOptions server;
  /// How often the gauges that query each partition's store (state size and keys, event-time
  /// lag, pending timers) and its read counters are refreshed.
  int gauge_refresh_ms = 5'000;
};

struct ServiceConfig {
  rollup::ModelConfig model;
  ProcessorOptions processor;
  RocksDbOptions rocksdb;  ///< path is set by the command (--state-dir or a temp dir)
  KafkaConfig kafka;
  ServiceOptions service;
  AdminConfig admin;
  RelayConfig relay;  ///< `pqa-scorer relay` only
};

/// A configuration error: start-up stops with this message.
class ConfigException : public std::runtime_error {
 public:
  ConfigException(std::string key, const std::string& problem)
      : std::runtime_error(key + ": " + problem), key_(std::move(key)) {}
  const std::string& key() const { return key_; }

 private:
  std::string key_;
};

/// Parses YAML text. Unknown keys are errors (a typo must not silently fall back to a default).
/// Every scalar may name environment variables, `${NAME}` or `${NAME:-default}` (secrets belong
/// there, not in the file); an unset one without a default is an error naming the key and the
/// variable.
ServiceConfig parse_config(const std::string& yaml_text);
/// Reads and parses a file; the exception message ends with the file name ("(in PATH)").
ServiceConfig load_config(const std::string& path);

}  // namespace pqa::scorer
