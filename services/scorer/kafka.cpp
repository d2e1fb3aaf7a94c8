#include "kafka.h"

#include <simdjson.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <limits>

#include "log.h"

namespace pqa::scorer::kafka {

void HandleDeleter::operator()(rd_kafka_t* rk) const {
  rd_kafka_destroy(rk);
}

namespace {

/// librdkafka's own log lines, as structured lines like every other (they would otherwise go
/// to stderr in librdkafka's format). Called from librdkafka's threads: log::write is
/// thread-safe. librdkafka redacts sensitive properties itself.
void log_line(const rd_kafka_t* rk, int level, const char* facility, const char* message) {
  const log::Level mapped = level <= 3   ? log::Level::kError
                            : level == 4 ? log::Level::kWarn
                            : level <= 6 ? log::Level::kInfo
                                         : log::Level::kDebug;
  log::write(mapped, "librdkafka", message,
             {{"client", rd_kafka_name(rk)}, {"facility", facility}});
}

}  // namespace

std::optional<RejectedProperty> set_properties(rd_kafka_conf_t* conf,
                                               const Properties& properties) {
  std::array<char, 512> err{};
  for (const auto& [name, value] : properties) {
    if (rd_kafka_conf_set(conf, name.c_str(), value.c_str(), err.data(), err.size()) ==
        RD_KAFKA_CONF_OK)
      continue;
    // librdkafka's text may quote the value.
    return RejectedProperty{name, is_secret_property(name)
                                      ? "is not accepted by librdkafka (value not shown)"
                                      : std::string(err.data())};
  }
  return std::nullopt;
}

Conf make_conf(const Properties& properties) {
  Conf conf(rd_kafka_conf_new());
  rd_kafka_conf_set_log_cb(conf.get(), &log_line);
  if (const auto rejected = set_properties(conf.get(), properties))
    throw KafkaError("librdkafka property '" + rejected->name + "': " + rejected->reason);
  return conf;
}

std::size_t value_room(std::size_t max_record_bytes, std::size_t key_bytes) {
  constexpr std::size_t kHeadroom = 4096;  // headers and the record's framing
  const std::size_t used = key_bytes + kHeadroom;
  return max_record_bytes > used ? max_record_bytes - used : 0;
}

Handle make_client(rd_kafka_type_t type, Conf conf) {
  std::array<char, 512> err{};
  rd_kafka_t* rk = rd_kafka_new(type, conf.get(), err.data(), err.size());
  if (rk == nullptr) throw KafkaError(std::string("creating a Kafka client: ") + err.data());
  (void)conf.release();  // rd_kafka_new took ownership on success
  return Handle(rk);
}

void throw_if(rd_kafka_error_t* error, std::string_view what) {
  if (error == nullptr) return;
  const std::string message = std::string(what) + ": " + rd_kafka_error_string(error);
  const bool fatal = rd_kafka_error_is_fatal(error) != 0;
  const bool abortable = rd_kafka_error_txn_requires_abort(error) != 0;
  const bool retriable = rd_kafka_error_is_retriable(error) != 0;
  rd_kafka_error_destroy(error);
  throw KafkaError(message, fatal, abortable, retriable);
}

void throw_if(rd_kafka_resp_err_t err, std::string_view what) {
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return;
  throw KafkaError(std::string(what) + ": " + rd_kafka_err2str(err));
}

rd_kafka_resp_err_t produce(rd_kafka_t* rk, const std::string& topic, int partition,
                            std::string_view key, std::string_view value,
                            rd_kafka_headers_t* headers, std::int64_t timestamp_ms, void* opaque) {
  std::array<rd_kafka_vu_t, 8> vu{};
  std::size_t n = 0;
  auto next = [&](rd_kafka_vtype_t type) -> rd_kafka_vu_t& {
    vu[n].vtype = type;
    return vu[n++];
  };
  next(RD_KAFKA_VTYPE_TOPIC).u.cstr = topic.c_str();
  next(RD_KAFKA_VTYPE_PARTITION).u.i32 = partition < 0 ? RD_KAFKA_PARTITION_UA : partition;
  next(RD_KAFKA_VTYPE_MSGFLAGS).u.i = RD_KAFKA_MSG_F_COPY;
  auto& k = next(RD_KAFKA_VTYPE_KEY);
  k.u.mem.ptr = key.empty() ? nullptr : const_cast<char*>(key.data());
  k.u.mem.size = key.size();
  auto& v = next(RD_KAFKA_VTYPE_VALUE);
  v.u.mem.ptr = value.data() == nullptr ? nullptr : const_cast<char*>(value.data());
  v.u.mem.size = value.size();
  if (headers != nullptr) next(RD_KAFKA_VTYPE_HEADERS).u.headers = headers;
  if (timestamp_ms > 0) next(RD_KAFKA_VTYPE_TIMESTAMP).u.i64 = timestamp_ms;
  if (opaque != nullptr) next(RD_KAFKA_VTYPE_OPAQUE).u.ptr = opaque;
  rd_kafka_error_t* error = rd_kafka_produceva(rk, vu.data(), n);
  if (error == nullptr) return RD_KAFKA_RESP_ERR_NO_ERROR;
  const rd_kafka_resp_err_t code = rd_kafka_error_code(error);
  rd_kafka_error_destroy(error);
  return code;
}

PartitionList make_partition_list(int capacity) {
  return PartitionList(rd_kafka_topic_partition_list_new(capacity));
}

int seek_timeout_argument(int timeout_ms, int version) {
  constexpr int kFixedIn = 0x02010000;  // 2.1.0, any pre-release of it included
  if (version >= kFixedIn || timeout_ms <= 0) return timeout_ms;
  const auto micros = static_cast<long long>(timeout_ms) * 1000;
  return static_cast<int>(std::min<long long>(micros, std::numeric_limits<int>::max()));
}

SeekOutcome seek(rd_kafka_t* consumer, rd_kafka_topic_partition_list_t* partitions,
                 int timeout_ms) {
  if (rd_kafka_error_t* error = rd_kafka_seek_partitions(
          consumer, partitions, seek_timeout_argument(timeout_ms, rd_kafka_version()))) {
    SeekOutcome outcome{rd_kafka_error_code(error), rd_kafka_error_string(error)};
    rd_kafka_error_destroy(error);
    return outcome;
  }
  for (int i = 0; i < partitions->cnt; ++i) {
    const rd_kafka_topic_partition_t& p = partitions->elems[i];
    if (p.err != RD_KAFKA_RESP_ERR_NO_ERROR)
      return {p.err, std::string(p.topic) + "[" + std::to_string(p.partition) +
                         "]: " + rd_kafka_err2str(p.err)};
  }
  return {};
}

void throw_if(const SeekOutcome& outcome, std::string_view what) {
  if (outcome.code == RD_KAFKA_RESP_ERR_NO_ERROR) return;
  throw KafkaError(std::string(what) + ": " + outcome.reason);
}

std::pair<std::int64_t, std::int64_t> query_watermarks(rd_kafka_t* rk, const std::string& topic,
                                                       int partition,
                                                       std::chrono::milliseconds timeout) {
  std::int64_t low = 0, high = 0;
  throw_if(rd_kafka_query_watermark_offsets(rk, topic.c_str(), partition, &low, &high,
                                            static_cast<int>(timeout.count())),
           "querying offsets of " + topic + "[" + std::to_string(partition) + "]");
  return {low, high};
}

std::optional<int> partition_count(rd_kafka_t* rk, const std::string& topic,
                                   std::chrono::milliseconds timeout) {
  const rd_kafka_metadata_t* md = nullptr;
  std::unique_ptr<rd_kafka_topic_t, decltype(&rd_kafka_topic_destroy)> handle(
      rd_kafka_topic_new(rk, topic.c_str(), nullptr), &rd_kafka_topic_destroy);
  throw_if(rd_kafka_metadata(rk, 0, handle.get(), &md, static_cast<int>(timeout.count())),
           "reading metadata of topic " + topic);
  std::unique_ptr<const rd_kafka_metadata_t, decltype(&rd_kafka_metadata_destroy)> guard(
      md, &rd_kafka_metadata_destroy);
  for (int i = 0; i < md->topic_cnt; ++i) {
    const auto& t = md->topics[i];
    if (topic != t.topic) continue;
    if (t.err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) return std::nullopt;
    throw_if(t.err, "topic " + topic);
    return t.partition_cnt;
  }
  return std::nullopt;
}

void create_topics(rd_kafka_t* rk, const std::vector<TopicSpec>& topics,
                   std::chrono::milliseconds timeout) {
  if (topics.empty()) return;
  std::array<char, 512> err{};
  std::vector<rd_kafka_NewTopic_t*> requests;
  struct Cleanup {
    std::vector<rd_kafka_NewTopic_t*>& r;
    ~Cleanup() { rd_kafka_NewTopic_destroy_array(r.data(), r.size()); }
  } cleanup{requests};
  for (const auto& t : topics) {
    rd_kafka_NewTopic_t* nt = rd_kafka_NewTopic_new(t.name.c_str(), t.partitions,
                                                    t.replication_factor, err.data(), err.size());
    if (nt == nullptr) throw KafkaError("topic " + t.name + ": " + err.data());
    requests.push_back(nt);
    for (const auto& [k, v] : t.config)
      throw_if(rd_kafka_NewTopic_set_config(nt, k.c_str(), v.c_str()),
               "topic " + t.name + " config " + k);
  }
  Queue queue(rd_kafka_queue_new(rk));
  std::unique_ptr<rd_kafka_AdminOptions_t, decltype(&rd_kafka_AdminOptions_destroy)> options(
      rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS),
      &rd_kafka_AdminOptions_destroy);
  throw_if(rd_kafka_AdminOptions_set_operation_timeout(
               options.get(), static_cast<int>(timeout.count()), err.data(), err.size()),
           "admin options");
  rd_kafka_CreateTopics(rk, requests.data(), requests.size(), options.get(), queue.get());
  std::unique_ptr<rd_kafka_event_t, decltype(&rd_kafka_event_destroy)> event(
      rd_kafka_queue_poll(queue.get(), static_cast<int>(timeout.count()) + 5000),
      &rd_kafka_event_destroy);
  if (!event) throw KafkaError("creating topics: no answer from the cluster in time");
  throw_if(rd_kafka_event_error(event.get()), "creating topics");
  const rd_kafka_CreateTopics_result_t* result = rd_kafka_event_CreateTopics_result(event.get());
  std::size_t count = 0;
  const rd_kafka_topic_result_t** results = rd_kafka_CreateTopics_result_topics(result, &count);
  for (std::size_t i = 0; i < count; ++i) {
    const auto code = rd_kafka_topic_result_error(results[i]);
    if (code == RD_KAFKA_RESP_ERR_NO_ERROR || code == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
      continue;
    const char* why = rd_kafka_topic_result_error_string(results[i]);
    throw KafkaError(std::string("creating topic ") + rd_kafka_topic_result_name(results[i]) +
                     ": " + (why ? why : rd_kafka_err2str(code)));
  }
}

TopicConfigValue describe_topic_config(rd_kafka_t* rk, const std::string& topic,
                                       const std::string& entry,
                                       std::chrono::milliseconds timeout) {
  std::unique_ptr<rd_kafka_ConfigResource_t, decltype(&rd_kafka_ConfigResource_destroy)> resource(
      rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic.c_str()),
      &rd_kafka_ConfigResource_destroy);
  Queue queue(rd_kafka_queue_new(rk));
  std::unique_ptr<rd_kafka_AdminOptions_t, decltype(&rd_kafka_AdminOptions_destroy)> options(
      rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS),
      &rd_kafka_AdminOptions_destroy);
  std::array<char, 512> err{};
  if (rd_kafka_AdminOptions_set_request_timeout(options.get(), static_cast<int>(timeout.count()),
                                                err.data(),
                                                err.size()) != RD_KAFKA_RESP_ERR_NO_ERROR)
    return {std::nullopt, err.data()};
  rd_kafka_ConfigResource_t* resources[] = {resource.get()};
  rd_kafka_DescribeConfigs(rk, resources, 1, options.get(), queue.get());
  std::unique_ptr<rd_kafka_event_t, decltype(&rd_kafka_event_destroy)> event(
      rd_kafka_queue_poll(queue.get(), static_cast<int>(timeout.count()) + 5000),
      &rd_kafka_event_destroy);
  if (!event) return {std::nullopt, "no answer from the cluster in time"};
  if (const auto code = rd_kafka_event_error(event.get()))
    return {std::nullopt, rd_kafka_err2str(code)};
  std::size_t count = 0;
  const rd_kafka_ConfigResource_t** described = rd_kafka_DescribeConfigs_result_resources(
      rd_kafka_event_DescribeConfigs_result(event.get()), &count);
  if (count != 1) return {std::nullopt, "no description of the topic in the answer"};
  if (const auto code = rd_kafka_ConfigResource_error(described[0]))
    return {std::nullopt, rd_kafka_err2str(code)};
  std::size_t entries = 0;
  const rd_kafka_ConfigEntry_t** configs = rd_kafka_ConfigResource_configs(described[0], &entries);
  for (std::size_t i = 0; i < entries; ++i)
    if (entry == rd_kafka_ConfigEntry_name(configs[i])) {
      const char* value = rd_kafka_ConfigEntry_value(configs[i]);
      return {std::string(value ? value : ""), {}};
    }
  return {std::nullopt, "the topic's configuration has no " + entry};
}

void log_client_error(const char* component, int err, const char* reason) {
  log::warn(
      component, "kafka client error",
      {{"error", rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(err))}, {"reason", reason}});
}

bool statistics_show_a_broker_up(std::string_view json) {
  thread_local simdjson::dom::parser parser;  // statistics arrive on the polling thread
  simdjson::dom::element root;
  if (parser.parse(json.data(), json.size()).get(root) != simdjson::SUCCESS) return false;
  simdjson::dom::object brokers;
  if (root["brokers"].get(brokers) != simdjson::SUCCESS) return false;
  for (auto [name, broker] : brokers) {
    std::string_view state;
    std::int64_t node = -1;
    if (broker["state"].get(state) == simdjson::SUCCESS && state == "UP" &&
        broker["nodeid"].get(node) == simdjson::SUCCESS && node >= 0)
      return true;
  }
  return false;
}

bool is_secret_property(std::string_view name) {
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (std::string_view marker :
       {"password", "secret", "key", "token", "oauthbearer.config", "jaas", "credential"})
    if (lower.find(marker) != std::string::npos) return true;
  return false;
}

}  // namespace pqa::scorer::kafka
