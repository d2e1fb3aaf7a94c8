#include "relay_service.h"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <limits>
#include <map>
#include <optional>
#include <unordered_map>
#include <utility>  // before Asio: its awaitable.hpp uses std::exchange without including it

#include "admin_server.h"
#include "config_loader.h"
#include "json_output.h"
#include "kafka.h"
#include "log.h"
#include "relay_dispatch.h"
#include "relay_http.h"
#include "relay_metrics.h"
#include "relay_payload.h"
#include "webhook_signing.h"

namespace pqa::scorer {
namespace {

namespace asio = boost::asio;
using relay::TimeMs;

TimeMs steady_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

TimeMs wall_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string host_name() {
  std::array<char, 256> name{};
  if (::gethostname(name.data(), name.size() - 1) != 0) return "localhost";
  return name.data();
}

/// Housekeeping cadence: Kafka queues drained even without a wake-up, gauges, readiness.
constexpr auto kTick = std::chrono::milliseconds(100);
/// A dead letter's key (the signal's account id) is cut to this; the value is cut to fit.
constexpr std::size_t kMaxDeadLetterKeyBytes = 1024;

/// Messages handled per turn before HTTP completions get their turn.
constexpr int kMaxMessagesPerTurn = 500;

kafka::Properties consumer_properties(const ServiceConfig& c) {
  const KafkaConfig& k = c.kafka;
  kafka::Properties p = {
      {"bootstrap.servers", k.bootstrap_servers},
      {"group.id", c.relay.group_id},
      {"partition.assignment.strategy", "cooperative-sticky"},
      // A relay group new to the topic delivers what the topic still holds: a signal emitted
      // before the relay first started is not silently skipped.
      {"auto.offset.reset", "earliest"},
  };
  if (!k.group_instance_id.empty()) p["group.instance.id"] = k.group_instance_id;
  p["client.id"] =
      c.relay.group_id + "-" + (k.group_instance_id.empty() ? host_name() : k.group_instance_id);
  for (const auto& [key, v] : k.properties) p[key] = v;
  for (const auto& [key, v] : k.consumer_properties) p[key] = v;
  // At least once rests on these: offsets are committed by the relay, past finished signals
  // only, and only committed (transactional) signals are read.
  p["enable.auto.commit"] = "false";
  p["enable.auto.offset.store"] = "false";
  p["isolation.level"] = "read_committed";
  // Readiness after a broker outage comes from the statistics (Relay::on_statistics).
  if (!p.count("statistics.interval.ms")) p["statistics.interval.ms"] = "5000";
  return p;
}

kafka::Properties producer_properties(const ServiceConfig& c) {
  kafka::Properties p = {{"bootstrap.servers", c.kafka.bootstrap_servers},
                         {"enable.idempotence", "true"},
                         {"linger.ms", "5"}};
  for (const auto& [key, v] : c.kafka.properties) p[key] = v;
  for (const auto& [key, v] : c.kafka.producer_properties) p[key] = v;
  return p;
}

/// The webhook-id of a request: the signal id when it carries one signal (the idempotency
/// key), otherwise a digest of the signal ids it carries.
std::string webhook_id(const std::vector<SignalPtr>& signals) {
  if (signals.size() == 1) return signals.front()->signal_id;
  std::uint64_t h = 14695981039346656037ull;  // FNV-1a
  for (const auto& s : signals) {
    for (unsigned char c : s->signal_id) h = (h ^ c) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "batch_%016llx", static_cast<unsigned long long>(h));
  return buf;
}

struct Endpoint {
  const EndpointConfig& config;
  relay::EndpointQueue queue;
  std::optional<WebhookSigner> signer;
  std::optional<PayloadTemplate> payload;  ///< field-update formats
  relay::HttpEndpointClient client;
  RelayEndpointSeries& metrics;
  bool reported_disabled = false;

  Endpoint(const EndpointConfig& c, asio::io_context& io, RelayMetrics& m, std::uint64_t seed)
      : config(c), queue(policy_of(c), seed), client(io, c), metrics(m.endpoint(c.name)) {
    if (!c.secrets.empty()) signer.emplace(c.secrets);
    if (c.payload.kind == PayloadFormat::Kind::kTemplate)
      payload.emplace(c.payload.body, c.payload.record);
  }

  static relay::EndpointPolicy policy_of(const EndpointConfig& c) {
    relay::EndpointPolicy p;
    p.coalesce = c.payload.kind == PayloadFormat::Kind::kTemplate;
    p.max_records = p.coalesce ? c.payload.max_records : 1;
    p.max_in_flight = c.max_in_flight;
    p.rate_limit = c.rate_limit;
    p.retry = c.retry;
    p.breaker = c.breaker;
    return p;
  }
};

/// A dead-letter record awaiting its delivery report (the signal's offset waits for it).
struct DeadLetter {
  SignalPtr signal;
  std::string endpoint, error;
  int attempts = 0;
  std::size_t max_value_bytes = SIZE_MAX;  ///< the record's value cut to this (too large once)
};

class Relay {
 public:
  Relay(const ServiceConfig& config, RelayMetrics& metrics);
  ~Relay();
  Relay(const Relay&) = delete;
  Relay& operator=(const Relay&) = delete;

  void run();

 private:
  // Kafka.
  static void on_offset_commit(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                               rd_kafka_topic_partition_list_t* offsets, void* opaque);
  void commit_failed(rd_kafka_resp_err_t err, const rd_kafka_topic_partition_list_t* offsets);
  static void on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                           rd_kafka_topic_partition_list_t* partitions, void* opaque);
  static void on_delivery(rd_kafka_t* rk, const rd_kafka_message_t* msg, void* opaque);
  static void on_error(rd_kafka_t* rk, int err, const char* reason, void* opaque);
  static int on_statistics(rd_kafka_t* rk, char* json, size_t len, void* opaque);
  void rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                 rd_kafka_topic_partition_list_t* partitions);
  void rethrow_callback_error();
  /// Stops the relay with `error` (exit 3) from where throwing is not allowed (a librdkafka
  /// callback): kept, then rethrown by a handler of its own.
  void fail(const std::exception& error);
  void wait_for_wakeup();
  void drain_kafka();
  void handle_message(const rd_kafka_message_t& msg);
  void commit(bool sync);
  void set_paused(bool paused, std::string_view why);
  /// `max_value_bytes`: the record's value is cut to it, with its size in a header (after a
  /// refusal as too large, which retrying whole would repeat for ever).
  void produce_dead_letter(const SignalPtr& signal, std::string endpoint, std::string error,
                           int attempts, std::size_t max_value_bytes = SIZE_MAX);
  /// The value bound to try after `current` was refused as too large: what the producer's
  /// message.max.bytes leaves beside the key and headers, then half of it each time (a broker
  /// or topic limit may be lower).
  std::size_t smaller_value_bound(std::size_t current, const RelaySignal& signal) const;

  // Deliveries.
  void pump();
  void deliver(Endpoint& endpoint, relay::Batch batch);
  void on_reply(Endpoint& endpoint, std::uint64_t batch_id, const std::vector<SignalPtr>& signals,
                TimeMs started, const relay::HttpReply& reply);
  void handle_finished(Endpoint& endpoint, std::vector<relay::Finished> finished);
  void release(const SignalPtr& signal);

  // Housekeeping and stopping.
  void tick();
  void begin_stop();
  void finish_stop();
  void update_gauges();

  const ServiceConfig& config_;
  const RelayConfig& relay_;
  RelayMetrics& metrics_;
  asio::io_context io_;
  asio::steady_timer pump_timer_{io_};
  asio::steady_timer tick_timer_{io_};
  asio::signal_set signals_{io_, SIGTERM, SIGINT};
  std::array<int, 2> pipe_{-1, -1};
  std::optional<asio::posix::stream_descriptor> wakeup_;
  std::array<char, 64> wakeup_buffer_{};

  std::vector<std::unique_ptr<Endpoint>> endpoints_;
  kafka::Handle producer_, consumer_;
  kafka::Queue consumer_queue_, producer_queue_;

  relay::OffsetTracker offsets_;
  std::unordered_map<int, std::uint64_t> generations_;
  /// A read signal: its partition's assignment (generation) and offset. Not its address: a
  /// revoked partition's signals are freed while their dead letters may still be in flight.
  using SignalKey = std::pair<std::uint64_t, std::int64_t>;
  static SignalKey key_of(const RelaySignal& s) { return {s.generation, s.offset}; }
  /// Endpoints still to finish each read signal.
  std::map<SignalKey, int> remaining_;
  std::exception_ptr callback_error_;  ///< thrown inside a librdkafka callback, rethrown later
  std::unordered_map<std::uint64_t, DeadLetter> dead_letters_;
  std::uint64_t next_dead_letter_ = 1;

  bool paused_ = false;
  bool stopping_ = false;
  bool brokers_down_ = false;  ///< from ALL_BROKERS_DOWN until statistics show one UP
  bool joined_ = false;        ///< a first assignment arrived
  bool destroying_ = false;    ///< in ~Relay: the rebalance callback only unassigns
  TimeMs stop_deadline_ = 0;
  TimeMs last_commit_ = 0;
  std::optional<TimeMs> pump_at_;
};

Relay::Relay(const ServiceConfig& config, RelayMetrics& metrics)
    : config_(config), relay_(config.relay), metrics_(metrics) {
  if (relay_.endpoints.empty())
    throw ConfigException("relay.endpoints", "must list at least one endpoint");
  if (config.kafka.bootstrap_servers.empty())
    throw ConfigException("kafka.bootstrap_servers", "is required by `relay`");
  std::uint64_t seed =
      relay_.jitter_seed != 0 ? relay_.jitter_seed : static_cast<std::uint64_t>(wall_now());
  for (const EndpointConfig& e : relay_.endpoints) {
    try {
      endpoints_.push_back(std::make_unique<Endpoint>(e, io_, metrics_, seed++));
    } catch (const std::runtime_error& err) {  // the TLS trust store
      throw ConfigException("relay.endpoints." + e.name + ".tls", err.what());
    }
  }
  if (::pipe2(pipe_.data(), O_NONBLOCK | O_CLOEXEC) != 0)
    throw std::runtime_error(std::string("pipe2: ") + std::strerror(errno));
  wakeup_.emplace(io_, pipe_[0]);

  auto producer_conf = kafka::make_conf(producer_properties(config));
  rd_kafka_conf_set_dr_msg_cb(producer_conf.get(), &Relay::on_delivery);
  rd_kafka_conf_set_error_cb(producer_conf.get(), &Relay::on_error);
  rd_kafka_conf_set_opaque(producer_conf.get(), this);
  producer_ = kafka::make_client(RD_KAFKA_PRODUCER, std::move(producer_conf));
  producer_queue_.reset(rd_kafka_queue_get_main(producer_.get()));
  rd_kafka_queue_io_event_enable(producer_queue_.get(), pipe_[1], "p", 1);

  auto consumer_conf = kafka::make_conf(consumer_properties(config));
  rd_kafka_conf_set_rebalance_cb(consumer_conf.get(), &Relay::on_rebalance);
  rd_kafka_conf_set_offset_commit_cb(consumer_conf.get(), &Relay::on_offset_commit);
  rd_kafka_conf_set_error_cb(consumer_conf.get(), &Relay::on_error);
  rd_kafka_conf_set_stats_cb(consumer_conf.get(), &Relay::on_statistics);
  rd_kafka_conf_set_opaque(consumer_conf.get(), this);
  consumer_ = kafka::make_client(RD_KAFKA_CONSUMER, std::move(consumer_conf));
  rd_kafka_poll_set_consumer(consumer_.get());
  consumer_queue_.reset(rd_kafka_queue_get_consumer(consumer_.get()));
  rd_kafka_queue_io_event_enable(consumer_queue_.get(), pipe_[1], "c", 1);

  const auto timeout = std::chrono::milliseconds(config.kafka.timeout_ms);
  const std::string& signals_topic = config.kafka.signals_topic;
  if (config.kafka.create_topics) {
    const auto partitions = kafka::partition_count(producer_.get(), signals_topic, timeout);
    kafka::create_topics(
        producer_.get(),
        {{relay_.dead_letter_topic, partitions.value_or(1), config.kafka.replication_factor, {}}},
        timeout);
  }
  auto topics = kafka::make_partition_list(1);
  rd_kafka_topic_partition_list_add(topics.get(), signals_topic.c_str(), RD_KAFKA_PARTITION_UA);
  kafka::throw_if(rd_kafka_subscribe(consumer_.get(), topics.get()), "subscribe");
  log::info("relay", "subscribed",
            {{"topic", signals_topic},
             {"group_id", relay_.group_id},
             {"endpoints", std::to_string(endpoints_.size())}});
}

Relay::~Relay() {
  if (consumer_) {
    // Not stopped by finish_stop (an exception left run()): leave the group now, while every
    // member the rebalance callback touches is still alive; it only unassigns from here on.
    destroying_ = true;
    rd_kafka_consumer_close(consumer_.get());
  }
  // Queue IO events write into the pipe: turn them off before it closes.
  if (consumer_queue_) rd_kafka_queue_io_event_enable(consumer_queue_.get(), -1, nullptr, 0);
  if (producer_queue_) rd_kafka_queue_io_event_enable(producer_queue_.get(), -1, nullptr, 0);
  wakeup_.reset();  // closes pipe_[0]
  if (pipe_[1] >= 0) ::close(pipe_[1]);
}

void Relay::run() {
  signals_.async_wait([this](const boost::system::error_code& ec, int) {
    if (!ec) begin_stop();
  });
  wait_for_wakeup();
  tick();
  io_.run();
}

// --- Kafka ---------------------------------------------------------------------------------

void Relay::wait_for_wakeup() {
  wakeup_->async_read_some(asio::buffer(wakeup_buffer_),
                           [this](const boost::system::error_code& ec, std::size_t) {
                             if (ec) return;  // closed: stopping
                             drain_kafka();
                             wait_for_wakeup();
                           });
}

void Relay::drain_kafka() {
  if (!consumer_) return;
  rd_kafka_poll(producer_.get(), 0);  // delivery reports of dead letters
  int handled = 0;
  while (handled < kMaxMessagesPerTurn) {
    kafka::Message msg(rd_kafka_consumer_poll(consumer_.get(), 0));
    rethrow_callback_error();
    if (!msg) break;
    handle_message(*msg);
    ++handled;
  }
  // The pipe signals only a queue turning non-empty: what is left must be fetched unasked.
  if (handled == kMaxMessagesPerTurn) asio::post(io_, [this] { drain_kafka(); });
  if (handled > 0) pump();
}

void Relay::on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t* partitions, void* opaque) {
  auto& self = *static_cast<Relay*>(opaque);
  // An exception must not unwind through librdkafka's C frames: it is kept and rethrown once
  // the poll has returned.
  try {
    self.rebalance(rk, err, partitions);
  } catch (...) {
    if (!self.callback_error_) self.callback_error_ = std::current_exception();
  }
}

void Relay::fail(const std::exception& error) {
  log::error("relay", "stopping", {{"error", error.what()}});
  if (!callback_error_) callback_error_ = std::make_exception_ptr(kafka::KafkaError(error.what()));
  asio::post(io_, [this] { rethrow_callback_error(); });  // out of io_.run(), to run_relay
}

void Relay::rethrow_callback_error() {
  if (callback_error_) std::rethrow_exception(std::exchange(callback_error_, nullptr));
}

void Relay::rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t* partitions) {
  const bool cooperative = std::string_view(rd_kafka_rebalance_protocol(rk)) == "COOPERATIVE";
  if (destroying_) {  // nothing may throw or commit here (see ~Relay)
    if (cooperative) {
      if (auto* error = err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS
                            ? rd_kafka_incremental_assign(rk, partitions)
                            : rd_kafka_incremental_unassign(rk, partitions))
        rd_kafka_error_destroy(error);
    } else {
      rd_kafka_assign(rk, nullptr);
    }
    return;
  }
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    for (int i = 0; i < partitions->cnt; ++i) {
      const int p = partitions->elems[i].partition;
      generations_[p] = offsets_.assign(p);
    }
    if (cooperative)
      kafka::throw_if(rd_kafka_incremental_assign(rk, partitions), "incremental_assign");
    else
      kafka::throw_if(rd_kafka_assign(rk, partitions), "assign");
    if (paused_) rd_kafka_pause_partitions(rk, partitions);
    log::info("relay", "partitions assigned", {{"count", std::to_string(partitions->cnt)}});
  } else {
    // Finished signals keep their progress; the rest is read again by the next owner.
    if (rd_kafka_assignment_lost(rk) == 0) commit(true);
    const TimeMs now = steady_now();
    for (int i = 0; i < partitions->cnt; ++i) {
      const int p = partitions->elems[i].partition;
      for (auto& e : endpoints_) e->queue.forget_partition(p, now);
      offsets_.revoke(p);
      if (auto gen = generations_.find(p); gen != generations_.end()) {
        constexpr auto kFirst = std::numeric_limits<std::int64_t>::min();
        remaining_.erase(remaining_.lower_bound({gen->second, kFirst}),
                         remaining_.lower_bound({gen->second + 1, kFirst}));
        generations_.erase(gen);
      }
    }
    if (cooperative)
      kafka::throw_if(rd_kafka_incremental_unassign(rk, partitions), "incremental_unassign");
    else
      kafka::throw_if(rd_kafka_assign(rk, nullptr), "unassign");
    log::info("relay", "partitions revoked", {{"count", std::to_string(partitions->cnt)}});
  }
  metrics_.assigned_partitions().Set(static_cast<double>(generations_.size()));
  joined_ = true;
  update_gauges();
}

void Relay::handle_message(const rd_kafka_message_t& msg) {
  if (msg.err) {
    if (msg.err == RD_KAFKA_RESP_ERR__PARTITION_EOF) return;
    if (msg.err == RD_KAFKA_RESP_ERR__FATAL)  // e.g. a static member fenced by its successor
      throw kafka::KafkaError(
          std::string("fatal Kafka client error: ") + rd_kafka_message_errstr(&msg), true);
    log::warn("relay", "consumer error", {{"error", rd_kafka_message_errstr(&msg)}});
    return;
  }
  const auto gen = generations_.find(msg.partition);
  if (gen == generations_.end()) return;  // a partition revoked while its messages queued
  metrics_.consumed().Increment();
  offsets_.read(msg.partition, msg.offset);
  const std::string_view value(static_cast<const char*>(msg.payload), msg.payload ? msg.len : 0);
  auto decoded = decode_signal(value);
  rd_kafka_timestamp_type_t ts_type;
  const std::int64_t timestamp = rd_kafka_message_timestamp(&msg, &ts_type);
  auto stamp = [&](RelaySignal& s) {
    s.partition = msg.partition;
    s.offset = msg.offset;
    const TimeMs read_at = wall_now();
    s.timestamp_ms = timestamp > 0 ? timestamp : read_at;
    s.age_when_read_ms = std::max<TimeMs>(0, read_at - s.timestamp_ms);
    s.generation = gen->second;
  };
  if (auto* error = std::get_if<std::string>(&decoded)) {
    // Kept whole, with the reason, in the dead-letter topic; the offset waits for it.
    metrics_.invalid().Increment();
    RelaySignal raw;
    raw.account_id.assign(static_cast<const char*>(msg.key), msg.key ? msg.key_len : 0);
    raw.json.assign(value);
    stamp(raw);
    auto signal = std::make_shared<const RelaySignal>(std::move(raw));
    remaining_[key_of(*signal)] = 1;
    log::warn("relay", "invalid signal dead-lettered",
              {{"partition", std::to_string(msg.partition)},
               {"offset", std::to_string(msg.offset)},
               {"error", *error}});
    produce_dead_letter(signal, "", "invalid signal: " + *error, 0);
    return;
  }
  auto& parsed = std::get<RelaySignal>(decoded);
  stamp(parsed);
  auto signal = std::make_shared<const RelaySignal>(std::move(parsed));
  int matches = 0;
  for (auto& e : endpoints_) matches += route_matches(e->config.routes, *signal);
  if (matches == 0) {
    offsets_.finish(signal->partition, signal->generation, signal->offset);
    return;
  }
  remaining_[key_of(*signal)] = matches;
  const TimeMs now = steady_now();
  for (auto& e : endpoints_)
    if (route_matches(e->config.routes, *signal))
      handle_finished(*e, e->queue.enqueue(signal, now));
  if (!paused_ && relay::should_pause(offsets_.unfinished(), relay_.max_pending_signals))
    set_paused(true, "max_pending_signals reached");
}

void Relay::set_paused(bool paused, std::string_view why) {
  rd_kafka_topic_partition_list_t* assignment = nullptr;
  if (rd_kafka_assignment(consumer_.get(), &assignment) != RD_KAFKA_RESP_ERR_NO_ERROR) return;
  kafka::PartitionList owned(assignment);
  if (paused)
    rd_kafka_pause_partitions(consumer_.get(), owned.get());
  else
    rd_kafka_resume_partitions(consumer_.get(), owned.get());
  paused_ = paused;
  metrics_.consumer_paused().Set(paused ? 1 : 0);
  log::info("relay", paused ? "consumption paused" : "consumption resumed",
            {{"reason", std::string(why)}});
}

void Relay::commit(bool sync) {
  last_commit_ = steady_now();
  const auto positions = offsets_.take_commits();
  if (positions.empty()) return;
  auto list = kafka::make_partition_list(static_cast<int>(positions.size()));
  for (const auto& [partition, offset] : positions)
    rd_kafka_topic_partition_list_add(list.get(), config_.kafka.signals_topic.c_str(), partition)
        ->offset = offset;
  const auto err = rd_kafka_commit(consumer_.get(), list.get(), sync ? 0 : 1);
  if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET) commit_failed(err, list.get());
}

void Relay::on_offset_commit(rd_kafka_t*, rd_kafka_resp_err_t err,
                             rd_kafka_topic_partition_list_t* offsets, void* opaque) {
  // An asynchronous commit's result, on the loop's thread (from the consumer's poll).
  auto& self = *static_cast<Relay*>(opaque);
  if (offsets == nullptr || err == RD_KAFKA_RESP_ERR__NO_OFFSET) return;
  if (err || std::any_of(offsets->elems, offsets->elems + offsets->cnt,
                         [](const auto& e) { return e.err != RD_KAFKA_RESP_ERR_NO_ERROR; }))
    self.commit_failed(err, offsets);
}

void Relay::commit_failed(rd_kafka_resp_err_t err, const rd_kafka_topic_partition_list_t* offsets) {
  // Handed out again at the next commit: a position that never reached the group would
  // otherwise wait for the partition to move on (or be read again by its next owner).
  rd_kafka_resp_err_t reason = err;
  for (int i = 0; i < offsets->cnt; ++i) {
    const auto& e = offsets->elems[i];
    if (!err && !e.err) continue;
    offsets_.commit_failed(e.partition, e.offset);
    if (!reason) reason = e.err;
  }
  log::warn("relay", "offset commit failed (retried at the next one)",
            {{"error", rd_kafka_err2str(reason)}});
}

std::size_t Relay::smaller_value_bound(std::size_t current, const RelaySignal& signal) const {
  if (current != SIZE_MAX) return current / 2;
  std::array<char, 32> text{};
  std::size_t size = text.size();
  long long max_bytes = 1'000'000;
  if (rd_kafka_conf_get(rd_kafka_conf(producer_.get()), "message.max.bytes", text.data(), &size) ==
      RD_KAFKA_CONF_OK)
    max_bytes = std::atoll(text.data());
  return kafka::value_room(static_cast<std::size_t>(std::max(0LL, max_bytes)),
                           std::min(signal.account_id.size(), kMaxDeadLetterKeyBytes));
}

void Relay::produce_dead_letter(const SignalPtr& signal, std::string endpoint, std::string error,
                                int attempts, std::size_t max_value_bytes) {
  const std::uint64_t token = next_dead_letter_++;
  rd_kafka_headers_t* headers = rd_kafka_headers_new(7);
  auto header = [&](const char* name, const std::string& value) {
    rd_kafka_header_add(headers, name, -1, value.data(), static_cast<ssize_t>(value.size()));
  };
  header("pqa-relay-error", error);
  header("pqa-relay-endpoint", endpoint);
  header("pqa-relay-attempts", std::to_string(attempts));
  header("pqa-relay-signal-id", signal->signal_id);
  header("pqa-relay-source", config_.kafka.signals_topic + "/" + std::to_string(signal->partition) +
                                 "/" + std::to_string(signal->offset));
  std::string_view value = signal->json;
  if (value.size() > max_value_bytes) {
    header("pqa-relay-truncated-from-bytes", std::to_string(value.size()));
    value = value.substr(0, max_value_bytes);
  }
  // The key too is bounded: a foreign record's account id can be as large as a record.
  std::string_view key = signal->account_id;
  if (key.size() > kMaxDeadLetterKeyBytes) {
    header("pqa-relay-key-truncated-from-bytes", std::to_string(key.size()));
    key = key.substr(0, kMaxDeadLetterKeyBytes);
  }
  const auto err =
      kafka::produce(producer_.get(), relay_.dead_letter_topic, -1, key, value, headers, 0,
                     reinterpret_cast<void*>(static_cast<std::uintptr_t>(token)));
  if (err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE && max_value_bytes > 0) {
    rd_kafka_headers_destroy(headers);
    produce_dead_letter(signal, std::move(endpoint), std::move(error), attempts,
                        smaller_value_bound(max_value_bytes, *signal));
    return;
  }
  if (err) {
    rd_kafka_headers_destroy(headers);
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
      fail(kafka::KafkaError("dead-letter producer failed fatally", true));
      return;
    }
    // The local queue is full or the topic unknown: keep the signal and try again shortly.
    log::warn("relay", "dead-letter produce refused; retrying", {{"error", rd_kafka_err2str(err)}});
    auto timer = std::make_shared<asio::steady_timer>(io_, std::chrono::seconds(1));
    timer->async_wait([this, timer, signal, endpoint = std::move(endpoint),
                       error = std::move(error), attempts,
                       max_value_bytes](const boost::system::error_code& ec) {
      if (!ec) produce_dead_letter(signal, endpoint, error, attempts, max_value_bytes);
    });
    return;
  }
  dead_letters_.emplace(
      token, DeadLetter{signal, std::move(endpoint), std::move(error), attempts, max_value_bytes});
}

void Relay::on_error(rd_kafka_t* rk, int err, const char* reason, void* opaque) {
  auto& self = *static_cast<Relay*>(opaque);
  if (err == RD_KAFKA_RESP_ERR__FATAL) {
    // A client that librdkafka declares dead (the idempotent producer's sequence lost, a
    // static member fenced) never recovers: dead letters would be refused for ever and the
    // signals' offsets held. Stop with exit 3; a restart reads again from the last commit and
    // the endpoints see those signals again under the same webhook-id.
    std::array<char, 512> detail{};
    rd_kafka_fatal_error(rk, detail.data(), detail.size());
    self.fail(kafka::KafkaError(std::string("fatal Kafka client error: ") + detail.data(), true));
    return;
  }
  if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
    self.brokers_down_ = true;
    self.update_gauges();
  }
  kafka::log_client_error("relay", err, reason);
}

int Relay::on_statistics(rd_kafka_t*, char* json, size_t len, void* opaque) {
  auto& self = *static_cast<Relay*>(opaque);
  const bool down = !kafka::statistics_show_a_broker_up(std::string_view(json, len));
  if (down != self.brokers_down_) {
    self.brokers_down_ = down;
    self.update_gauges();
  }
  return 0;  // librdkafka frees the JSON
}

void Relay::on_delivery(rd_kafka_t*, const rd_kafka_message_t* msg, void* opaque) {
  auto& self = *static_cast<Relay*>(opaque);
  const auto token = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(msg->_private));
  auto it = self.dead_letters_.find(token);
  if (it == self.dead_letters_.end()) return;
  DeadLetter letter = std::move(it->second);
  self.dead_letters_.erase(it);
  if (msg->err) {
    log::warn("relay", "dead-letter delivery failed; producing again",
              {{"error", rd_kafka_err2str(msg->err)}});
    const bool too_large =
        msg->err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE && letter.max_value_bytes > 0;
    self.produce_dead_letter(
        letter.signal, std::move(letter.endpoint), std::move(letter.error), letter.attempts,
        too_large ? self.smaller_value_bound(letter.max_value_bytes, *letter.signal)
                  : letter.max_value_bytes);
    return;
  }
  self.metrics_.dead_letters().Increment();
  self.release(letter.signal);
}

// --- Deliveries ----------------------------------------------------------------------------

void Relay::pump() {
  if (stopping_) return;  // draining: requests in flight finish, no new ones start
  const TimeMs now = steady_now();
  std::optional<TimeMs> wake;
  for (auto& e : endpoints_) {
    while (auto batch = e->queue.take_batch(now)) deliver(*e, std::move(*batch));
    if (auto at = e->queue.next_wakeup(now); at && (!wake || *at < *wake)) wake = at;
  }
  if (!wake || (pump_at_ && *pump_at_ <= *wake && *pump_at_ > now)) return;
  pump_at_ = *wake;
  pump_timer_.expires_at(std::chrono::steady_clock::time_point(std::chrono::milliseconds(*wake)));
  pump_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;  // re-armed for another time
    pump_at_.reset();
    pump();
  });
}

void Relay::deliver(Endpoint& e, relay::Batch batch) {
  relay::HttpCall call;
  call.method = e.config.method;
  call.body =
      e.payload ? e.payload->render(batch.signals) : standard_webhooks_body(*batch.signals.front());
  const std::string id = webhook_id(batch.signals);
  const std::int64_t timestamp = wall_now() / 1000;
  call.headers = e.config.headers;
  call.headers.emplace_back("webhook-id", id);
  call.headers.emplace_back("webhook-timestamp", std::to_string(timestamp));
  if (e.signer)
    call.headers.emplace_back("webhook-signature", e.signer->signature(id, timestamp, call.body));
  if (batch.attempt > 1) e.metrics.retries->Increment();
  e.metrics.in_flight->Set(e.queue.in_flight());
  const TimeMs started = steady_now();
  e.client.send(std::move(call),
                [this, &e, id = batch.id, signals = std::move(batch.signals),
                 started](relay::HttpReply reply) { on_reply(e, id, signals, started, reply); });
}

void Relay::on_reply(Endpoint& e, std::uint64_t batch_id, const std::vector<SignalPtr>& signals,
                     TimeMs started, const relay::HttpReply& reply) {
  const TimeMs now = steady_now();
  relay::AttemptResult result{reply.status, reply.error, std::nullopt};
  if (!reply.retry_after.empty())
    result.retry_after_ms = relay::parse_retry_after(reply.retry_after, wall_now());
  if (auto why = crm_partial_failure(e.config.payload.preset, reply.status, reply.body)) {
    result.error = std::move(*why);
    result.partial_failure = true;
  }
  const auto cls = relay::classify(result);
  e.metrics.attempts[static_cast<std::size_t>(cls)]->Increment();
  e.metrics.request_duration->Observe(double(now - started) / 1000.0);
  if (cls == relay::AttemptClass::kSuccess) {
    const TimeMs wall = wall_now();
    for (const auto& s : signals)
      e.metrics.signal_to_2xx->Observe(double(wall - s->timestamp_ms) / 1000.0);
  } else {
    log::warn("relay", "delivery failed",
              {{"endpoint", e.config.name},
               {"outcome", relay::to_string(cls)},
               {"error", reply.error},
               {"signals", std::to_string(signals.size())}});
  }
  handle_finished(e, e.queue.complete(batch_id, result, now));
  if (e.queue.disabled() && !e.reported_disabled) {
    e.reported_disabled = true;
    log::error("relay", "endpoint disabled: it answered 410 Gone; its signals are dead-lettered",
               {{"endpoint", e.config.name}});
  }
  e.metrics.in_flight->Set(e.queue.in_flight());
  if (stopping_ && std::all_of(endpoints_.begin(), endpoints_.end(),
                               [](const auto& x) { return x->queue.in_flight() == 0; }))
    finish_stop();
  else
    pump();
}

void Relay::handle_finished(Endpoint& e, std::vector<relay::Finished> finished) {
  for (auto& f : finished) {
    e.metrics.finished[static_cast<std::size_t>(f.outcome)]->Increment(
        static_cast<double>(f.signals.size()));
    for (const SignalPtr& s : f.signals) {
      if (f.outcome == relay::Finish::kDeadLettered)
        produce_dead_letter(s, e.config.name, f.error, f.attempts);
      else
        release(s);
    }
  }
}

void Relay::release(const SignalPtr& signal) {
  auto it = remaining_.find(key_of(*signal));
  if (it == remaining_.end() || --it->second > 0) return;
  remaining_.erase(it);
  offsets_.finish(signal->partition, signal->generation, signal->offset);
}

// --- Housekeeping and stopping -------------------------------------------------------------

void Relay::update_gauges() {
  const TimeMs now = steady_now();
  for (auto& e : endpoints_) {
    e->metrics.breaker_state->Set(static_cast<double>(e->queue.breaker_state(now)));
    e->metrics.queued_signals->Set(static_cast<double>(e->queue.queued_signals()));
    e->metrics.in_flight->Set(e->queue.in_flight());
    e->metrics.disabled->Set(e->queue.disabled() ? 1 : 0);
    e->metrics.slow_down_factor->Set(e->queue.slow_down_factor());
  }
  metrics_.pending_signals().Set(static_cast<double>(offsets_.unfinished()));
  metrics_.set_ready(joined_ && !brokers_down_ && !stopping_);
}

void Relay::tick() {
  drain_kafka();
  const TimeMs now = steady_now();
  if (!stopping_) {
    if (now - last_commit_ >= relay_.commit_interval_ms) commit(false);
    if (paused_ && relay::may_resume(offsets_.unfinished(), relay_.max_pending_signals))
      set_paused(false, "below 90 % of max_pending_signals");
  } else if (now >= stop_deadline_) {
    log::warn("relay",
              "drain timeout: stopping with requests in flight (they are sent again "
              "after the restart)");
    finish_stop();
    return;
  }
  update_gauges();
  metrics_.loop_turned();
  pump();
  tick_timer_.expires_after(kTick);
  tick_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) tick();
  });
}

void Relay::begin_stop() {
  if (stopping_) return;
  log::info("relay", "stopping: waiting for requests in flight",
            {{"drain_timeout_ms", std::to_string(relay_.drain_timeout_ms)}});
  stopping_ = true;
  metrics_.set_ready(false);
  stop_deadline_ = steady_now() + relay_.drain_timeout_ms;
  if (!paused_) set_paused(true, "stopping");
  if (std::all_of(endpoints_.begin(), endpoints_.end(),
                  [](const auto& e) { return e->queue.in_flight() == 0; }))
    finish_stop();
}

void Relay::finish_stop() {
  if (!consumer_) return;
  rd_kafka_poll(producer_.get(), 0);
  rd_kafka_flush(producer_.get(), config_.kafka.timeout_ms);  // dead letters, then commit
  rd_kafka_poll(producer_.get(), 0);
  commit(true);
  rd_kafka_consumer_close(consumer_.get());  // revokes: commits what finished meanwhile
  consumer_queue_.reset();
  consumer_.reset();
  rethrow_callback_error();
  log::info("relay", "stopped");
  io_.stop();
}

std::string_view route_of(const std::string& target) {
  return std::string_view(target).substr(0, target.find('?'));
}

HttpHandler make_handler(RelayMetrics& metrics) {
  return [&metrics](const HttpRequest& request, Respond respond) {
    const auto route = route_of(request.target);
    HttpResponse r;
    if (route == "/healthz") {
      r.body = "ok\n";
    } else if (route == "/readyz") {
      const bool ready = metrics.ready();
      r.status = ready ? 200 : 503;
      r.body = ready ? "ready\n" : "not ready\n";
    } else if (route == "/metrics") {
      r.content_type = "text/plain; version=0.0.4; charset=utf-8";
      r.body = metrics.exposition();
    } else {
      r = json_error(404, "not_found", "no such route");
    }
    respond(std::move(r));
  };
}

}  // namespace

int run_relay(const RelayOptions& options) {
  ServiceConfig config;
  try {
    config = load_config(options.config_path);
  } catch (const ConfigException& e) {
    log::error("config", e.what(), {{"key", e.key()}});
    return 2;
  }
  const auto& level = config.service.log_level;
  log::set_min_level(level == "debug"   ? log::Level::kDebug
                     : level == "warn"  ? log::Level::kWarn
                     : level == "error" ? log::Level::kError
                                        : log::Level::kInfo);
  RelayMetrics metrics;
  std::unique_ptr<AdminServer> admin;
  try {
    if (config.admin.enabled) {
      admin = std::make_unique<AdminServer>(config.admin.server, make_handler(metrics));
      log::info(
          "admin", "listening",
          {{"address", config.admin.server.bind_address}, {"port", std::to_string(admin->port())}});
    }
  } catch (const std::runtime_error& e) {  // the address is checked with the config: the port
    log::error("config", e.what(), {{"key", "admin.port"}});
    return 2;
  }
  try {
    Relay relay(config, metrics);
    relay.run();
    return 0;
  } catch (const ConfigException& e) {
    log::error("config", e.what(), {{"key", e.key()}});
    return 2;
  } catch (const kafka::KafkaError& e) {
    log::error("relay", "stopping on a Kafka error", {{"error", e.what()}});
    return 3;
  } catch (const std::exception& e) {
    log::error("relay", "stopping on an unexpected error", {{"error", e.what()}});
    return 4;
  }
}

}  // namespace pqa::scorer
