// Thin RAII layer over librdkafka's C API: handles that free themselves, configuration from
// a property map, and errors as exceptions. Nothing here knows about scoring.
#pragma once

#include <librdkafka/rdkafka.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace pqa::scorer::kafka {

/// A Kafka operation failed. `fatal`: the client cannot continue (e.g. the producer was
/// fenced by a newer instance); `abortable`: the open transaction must be aborted;
/// `retriable`: the same call may succeed if tried again.
class KafkaError : public std::runtime_error {
 public:
  explicit KafkaError(const std::string& what, bool fatal = false, bool abortable = false,
                      bool retriable = false)
      : std::runtime_error(what), fatal_(fatal), abortable_(abortable), retriable_(retriable) {}
  bool fatal() const { return fatal_; }
  bool abortable() const { return abortable_; }
  bool retriable() const { return retriable_; }

 private:
  bool fatal_, abortable_, retriable_;
};

struct HandleDeleter {
  void operator()(rd_kafka_t* rk) const;
};
struct ConfDeleter {
  void operator()(rd_kafka_conf_t* c) const { rd_kafka_conf_destroy(c); }
};
struct PartitionListDeleter {
  void operator()(rd_kafka_topic_partition_list_t* l) const {
    rd_kafka_topic_partition_list_destroy(l);
  }
};
struct MessageDeleter {
  void operator()(rd_kafka_message_t* m) const { rd_kafka_message_destroy(m); }
};
struct QueueDeleter {
  void operator()(rd_kafka_queue_t* q) const { rd_kafka_queue_destroy(q); }
};
struct GroupMetadataDeleter {
  void operator()(rd_kafka_consumer_group_metadata_t* m) const {
    rd_kafka_consumer_group_metadata_destroy(m);
  }
};

using Handle = std::unique_ptr<rd_kafka_t, HandleDeleter>;
using Conf = std::unique_ptr<rd_kafka_conf_t, ConfDeleter>;
using PartitionList = std::unique_ptr<rd_kafka_topic_partition_list_t, PartitionListDeleter>;
using Message = std::unique_ptr<rd_kafka_message_t, MessageDeleter>;
using Queue = std::unique_ptr<rd_kafka_queue_t, QueueDeleter>;
using GroupMetadata = std::unique_ptr<rd_kafka_consumer_group_metadata_t, GroupMetadataDeleter>;

using Properties = std::map<std::string, std::string>;

/// A configuration object with every property set; a property librdkafka rejects throws
/// KafkaError naming it (its value is not repeated: it may be a secret).
Conf make_conf(const Properties& properties);

/// A property librdkafka refused, and why (a secret's value left out of the reason).
struct RejectedProperty {
  std::string name;
  std::string reason;
};
/// Sets each property on `conf`; the first one refused, if any (the rest are not set).
std::optional<RejectedProperty> set_properties(rd_kafka_conf_t* conf, const Properties& properties);

/// What a record of at most `max_record_bytes` (the producer's message.max.bytes) leaves for
/// its value beside a key of `key_bytes`, its headers and its framing.
std::size_t value_room(std::size_t max_record_bytes, std::size_t key_bytes);
/// Creates a client; throws KafkaError with librdkafka's reason on failure.
Handle make_client(rd_kafka_type_t type, Conf conf);

/// Turns a rd_kafka_error_t (which it frees) into a KafkaError; no-op for nullptr.
void throw_if(rd_kafka_error_t* error, std::string_view what);
/// Same for a response code.
void throw_if(rd_kafka_resp_err_t err, std::string_view what);

PartitionList make_partition_list(int capacity = 4);

/// The timeout argument that makes rd_kafka_seek_partitions of librdkafka `version`
/// (rd_kafka_version()) wait `timeout_ms` milliseconds. Before 2.1.0 it waited that many
/// *microseconds* (librdkafka PR 4230): Debian's 2.0.2 gave a seek 30 ms where 30 s were asked,
/// and a loaded broker thread that answered later failed the seek with "Timed out".
int seek_timeout_argument(int timeout_ms, int version);

/// How a seek ended: `code` NO_ERROR, or the error with librdkafka's own description of it
/// (e.g. "Timed out waiting for 1 remaining partition seek(s)", which its error code alone,
/// "Local: Timed out", does not say), naming the partition when one partition was refused.
struct SeekOutcome {
  rd_kafka_resp_err_t code = RD_KAFKA_RESP_ERR_NO_ERROR;
  std::string reason;
};
/// Seeks each partition of `partitions` to its offset, waiting up to `timeout_ms`: the call's
/// error, else the first partition's, else none. librdkafka reports a partition it could not
/// seek (e.g. RD_KAFKA_RESP_ERR__STATE: its fetch not started) in that partition's element
/// only, so a caller that checked the call alone would take a refused seek for a done one.
SeekOutcome seek(rd_kafka_t* consumer, rd_kafka_topic_partition_list_t* partitions, int timeout_ms);
/// Throws KafkaError "`what`: <reason>" for a failed seek; no-op for a done one.
void throw_if(const SeekOutcome& outcome, std::string_view what);

/// Queues one record (payload and key copied). An empty key is a null key; `headers`
/// (may be null) belong to the record on success, to the caller otherwise; timestamp_ms 0:
/// now; `opaque` reaches the delivery report. Uses rd_kafka_produceva: librdkafka's RD_KAFKA_V_*
/// macros are GNU statement expressions, which -Wpedantic rejects under clang.
rd_kafka_resp_err_t produce(rd_kafka_t* rk, const std::string& topic, int partition,
                            std::string_view key, std::string_view value,
                            rd_kafka_headers_t* headers, std::int64_t timestamp_ms,
                            void* opaque = nullptr);

/// Low and high watermark of one partition (committed high watermark for read_committed
/// readers is the last stable offset; see restore code).
std::pair<std::int64_t, std::int64_t> query_watermarks(rd_kafka_t* rk, const std::string& topic,
                                                       int partition,
                                                       std::chrono::milliseconds timeout);

/// Number of partitions of `topic`, or nullopt if it does not exist.
std::optional<int> partition_count(rd_kafka_t* rk, const std::string& topic,
                                   std::chrono::milliseconds timeout);

struct TopicSpec {
  std::string name;
  int partitions = 1;
  int replication_factor = 1;
  Properties config;  ///< e.g. cleanup.policy=compact
};
/// Creates the topics (an existing topic is not an error); throws naming the first failure.
void create_topics(rd_kafka_t* rk, const std::vector<TopicSpec>& topics,
                   std::chrono::milliseconds timeout);

/// The value of one configuration entry of `topic` (DescribeConfigs), or why it could not be
/// read (not authorised, not supported, no answer in time).
struct TopicConfigValue {
  std::optional<std::string> value;
  std::string error;  ///< empty when `value` was read
};
TopicConfigValue describe_topic_config(rd_kafka_t* rk, const std::string& topic,
                                       const std::string& entry, std::chrono::milliseconds timeout);

/// Whether librdkafka's statistics JSON (statistics.interval.ms) shows a broker (not the
/// bootstrap placeholder) in state UP. Together with RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN
/// (the immediate "down", for which there is no "up" event) it is a client's view of its
/// brokers: each report says whether it is connected, and corrects an outage whose
/// ALL_BROKERS_DOWN was not raised (librdkafka raises it once per outage, only when every
/// known broker, the bootstrap one included, has been seen down).
bool statistics_show_a_broker_up(std::string_view json);

/// Logs what a client's error callback (rd_kafka_conf_set_error_cb) reports, as `component`.
/// With that callback set, librdkafka no longer logs these errors itself.
void log_client_error(const char* component, int err, const char* reason);

/// Whether a property's value must never be printed (passwords, keys, tokens).
bool is_secret_property(std::string_view name);

}  // namespace pqa::scorer::kafka
