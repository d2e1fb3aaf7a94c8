#include "output_producer.h"

#include <array>
#include <exception>
#include <thread>

#include "kafka_retry.h"
#include "log.h"

namespace pqa::scorer {
namespace {

constexpr long long kTransactionTimeoutMs = 60'000;  ///< librdkafka's default, made explicit

kafka::Properties producer_properties(const KafkaConfig& c, const std::string& transactional_id) {
  kafka::Properties p = {
      {"bootstrap.servers", c.bootstrap_servers},
      {"enable.idempotence", "true"},
      {"acks", "all"},
      {"linger.ms", "5"},
      {"compression.type", "lz4"},
      // librdkafka's producers ask brokers to auto-create unknown topics by default, and
      // Apache Kafka's brokers do by default: the start-up check (a metadata request through
      // this client) would create a missing changelog as a plain topic, whose retention
      // later deletes state. Output topics exist, or the service creates them as configured.
      {"allow.auto.create.topics", "false"},
  };
  // Broker outages are ridden out: librdkafka retries a message until message.timeout.ms,
  // and the service's own loops retry commits and flushes beyond it. In a transaction the
  // message timeout cannot exceed the transaction's; a transaction that times out is aborted
  // and its events reprocessed.
  if (!transactional_id.empty()) {
    p["transactional.id"] = transactional_id;
    p["transaction.timeout.ms"] = std::to_string(kTransactionTimeoutMs);
    p["message.timeout.ms"] = "60000";
  } else {
    p["message.timeout.ms"] = "300000";
  }
  for (const auto& [k, v] : c.properties) p[k] = v;
  for (const auto& [k, v] : c.producer_properties) p[k] = v;
  return p;
}

/// An integer property as librdkafka will use it: `fallback` (its default, or the one set
/// above) when absent; librdkafka refuses a malformed value before this matters.
long long integer_property(const kafka::Properties& properties, const std::string& name,
                           long long fallback) {
  const auto it = properties.find(name);
  if (it == properties.end()) return fallback;
  try {
    return std::stoll(it->second);
  } catch (const std::exception&) {
    return fallback;
  }
}

}  // namespace

long long transaction_timeout_ms(const KafkaConfig& config) {
  // Any transactional id: the properties a transactional producer of this config gets.
  return integer_property(producer_properties(config, "-"), "transaction.timeout.ms",
                          kTransactionTimeoutMs);
}

OutputProducer::OutputProducer(const KafkaConfig& config, const std::string& transactional_id,
                               const std::atomic<bool>& stop, std::chrono::milliseconds stop_grace)
    : properties_(producer_properties(config, transactional_id)),
      changelog_topic_(config.changelog_topic),
      transactional_(!transactional_id.empty()),
      timeout_(config.timeout_ms),
      transaction_timeout_(
          integer_property(properties_, "transaction.timeout.ms", kTransactionTimeoutMs)),
      max_record_bytes_(
          static_cast<std::size_t>(integer_property(properties_, "message.max.bytes", 1'000'000))),
      stop_(stop),
      stop_deadline_(stop_grace) {
  create_client(/*at_start_up=*/true);
}

OutputProducer::~OutputProducer() {
  // Destroying the client can still run its callbacks (records undelivered fail into
  // on_delivery, as in replace()), which write to changelog_offsets_, delivery_error_ and
  // security_failure_: declared after handle_, those would be destroyed first and written to
  // after. (The fencing test's release build once died at exit with a corrupted heap; this
  // is one way there.)
  handle_.reset();
}

void OutputProducer::create_client(bool at_start_up) {
  auto conf = kafka::make_conf(properties_);
  rd_kafka_conf_set_dr_msg_cb(conf.get(), &OutputProducer::on_delivery);
  rd_kafka_conf_set_error_cb(conf.get(), &OutputProducer::on_error);
  rd_kafka_conf_set_opaque(conf.get(), this);
  handle_ = kafka::make_client(RD_KAFKA_PRODUCER, std::move(conf));
  if (!transactional_) return;
  // The transaction coordinator may not be reachable yet; but at start-up, rejected
  // credentials or an untrusted certificate will not fix themselves. A replacement while
  // running waits them out, like every other call (credentials rotated under the instance).
  // No transaction of ours is open yet, so a stopping process has nothing to wait for here.
  kafka::StopDeadline at_once(std::chrono::milliseconds(0));
  const int timeout = static_cast<int>(timeout_.count());
  kafka::retry_while_unreachable([&] { return rd_kafka_init_transactions(handle_.get(), timeout); },
                                 "init_transactions", stop_, at_once,
                                 [this, at_start_up] {
                                   if (at_start_up) throw_if_security_failure();
                                 });
}

bool OutputProducer::failed_replaceably() const {
  const rd_kafka_resp_err_t err = rd_kafka_fatal_error(handle_.get(), nullptr, 0);
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return false;
  const bool fenced = err == RD_KAFKA_RESP_ERR__FENCED ||
                      err == RD_KAFKA_RESP_ERR_PRODUCER_FENCED ||
                      err == RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH;
  // A zombie whose transaction happens to be old gets replaced once too; its new producer
  // then fences the newer instance's young transaction, which stops that instance (exit 3),
  // whose restart fences the zombie again while its transaction is young: it converges.
  return !fenced || transaction_age() >= transaction_timeout_;
}

bool OutputProducer::fenced_by_newer_instance() const {
  return rd_kafka_fatal_error(handle_.get(), nullptr, 0) != RD_KAFKA_RESP_ERR_NO_ERROR &&
         !failed_replaceably();
}

std::string OutputProducer::fatal_error() const {
  std::array<char, 512> reason{};
  if (rd_kafka_fatal_error(handle_.get(), reason.data(), reason.size()) ==
      RD_KAFKA_RESP_ERR_NO_ERROR)
    return {};
  return reason.data();
}

std::chrono::milliseconds OutputProducer::transaction_age() const {
  if (!transaction_began_) return std::chrono::milliseconds(0);
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               *transaction_began_);
}

void OutputProducer::replace() {
  handle_.reset();  // undelivered records fail here, into the callbacks of this object
  transaction_began_.reset();
  changelog_offsets_.clear();
  delivery_error_.reset();
  security_failure_.reset();
  create_client(/*at_start_up=*/false);
}

void OutputProducer::on_error(rd_kafka_t*, int err, const char* reason, void* opaque) {
  kafka::log_client_error("producer", err, reason);
  auto* self = static_cast<OutputProducer*>(opaque);
  if (self->security_failure_) return;
  if (err == RD_KAFKA_RESP_ERR__AUTHENTICATION)
    self->security_failure_ = std::string("the brokers rejected the credentials: ") + reason;
  else if (err == RD_KAFKA_RESP_ERR__SSL)
    self->security_failure_ = std::string("the TLS handshake failed: ") + reason;
}

void OutputProducer::throw_if_security_failure() {
  poll();  // error callbacks are served by polling
  if (security_failure_)
    throw ConfigException(
        "kafka.properties",
        *security_failure_ + " (check security.protocol, sasl.* and ssl.* in kafka.properties)");
}

void OutputProducer::on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  auto* self = static_cast<OutputProducer*>(opaque);
  if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (!self->delivery_error_)
      self->delivery_error_ = std::string("delivery to ") + rd_kafka_topic_name(m->rkt) + ": " +
                              rd_kafka_err2str(m->err);
    return;
  }
  if (self->changelog_topic_ == rd_kafka_topic_name(m->rkt)) {
    auto& last = self->changelog_offsets_[m->partition];
    if (m->offset > last) last = m->offset;
  }
}

void OutputProducer::produce(const std::string& topic, int partition, std::string_view key,
                             std::string_view value, const Headers& headers,
                             std::int64_t timestamp_ms) {
  for (;;) {
    rd_kafka_headers_t* hdrs = nullptr;
    if (!headers.empty()) {
      hdrs = rd_kafka_headers_new(headers.size());
      for (const auto& [name, v] : headers)
        rd_kafka_header_add(hdrs, name.data(), static_cast<ssize_t>(name.size()), v.data(),
                            static_cast<ssize_t>(v.size()));
    }
    const rd_kafka_resp_err_t err =
        kafka::produce(handle_.get(), topic, partition, key, value, hdrs, timestamp_ms);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return;  // the headers now belong to the message
    if (hdrs != nullptr) rd_kafka_headers_destroy(hdrs);
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      // Aborting cures only a refusal because the transaction has failed (librdkafka takes
      // no records until it is aborted). Any other refusal (a record over message.max.bytes,
      // an unknown topic) would come back on every retry of the interval: not abortable.
      const bool transaction_failed =
          err == RD_KAFKA_RESP_ERR__STATE || err == RD_KAFKA_RESP_ERR__FATAL;
      throw kafka::KafkaError("producing to " + topic + ": " + rd_kafka_err2str(err),
                              err == RD_KAFKA_RESP_ERR__FATAL,
                              transactional_ && transaction_failed);
    }
    // A stop during an outage would otherwise wait here until the queued records time out
    // (message.timeout.ms, 5 min), past the pod's termination grace.
    if (stop_deadline_.passed(stop_))
      throw kafka::KafkaError("producing to " + topic +
                              ": the queue is still full at the end of the shutdown's grace "
                              "(cluster unreachable?)");
    rd_kafka_poll(handle_.get(), 50);  // let deliveries drain the queue
  }
}

void OutputProducer::begin_transaction() {
  kafka::throw_if(rd_kafka_begin_transaction(handle_.get()), "begin_transaction");
  transaction_began_ = std::chrono::steady_clock::now();
}

void OutputProducer::commit_transaction(rd_kafka_topic_partition_list_t* offsets,
                                        rd_kafka_t* consumer) {
  const int timeout = static_cast<int>(timeout_.count());
  if (offsets != nullptr && offsets->cnt > 0) {
    kafka::GroupMetadata group(rd_kafka_consumer_group_metadata(consumer));
    kafka::retry_while_unreachable(
        [&] {
          return rd_kafka_send_offsets_to_transaction(handle_.get(), offsets, group.get(),
                                                      stop_deadline_.timeout_ms(stop_, timeout));
        },
        "send_offsets_to_transaction", stop_, stop_deadline_);
  }
  kafka::retry_while_unreachable(
      [&] {
        return rd_kafka_commit_transaction(handle_.get(),
                                           stop_deadline_.timeout_ms(stop_, timeout));
      },
      "commit_transaction", stop_, stop_deadline_);
  transaction_began_.reset();
  delivery_error_.reset();  // a committed transaction delivered everything it holds
}

void OutputProducer::abort_transaction() {
  const int timeout = static_cast<int>(timeout_.count());
  kafka::retry_while_unreachable(
      [&] {
        return rd_kafka_abort_transaction(handle_.get(), stop_deadline_.timeout_ms(stop_, timeout));
      },
      "abort_transaction", stop_, stop_deadline_);
  transaction_began_.reset();
  delivery_error_.reset();
  changelog_offsets_.clear();
}

void OutputProducer::flush_all() {
  const int timeout = static_cast<int>(timeout_.count());
  while (rd_kafka_outq_len(handle_.get()) > 0) {
    const auto err = rd_kafka_flush(handle_.get(), stop_deadline_.timeout_ms(stop_, timeout));
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) break;
    if (stop_deadline_.passed(stop_)) kafka::throw_if(err, "flushing the producer");
    log::warn("producer", "records still queued, waiting for the cluster",
              {{"queued", std::to_string(rd_kafka_outq_len(handle_.get()))}});
  }
  check_delivery_errors();
}

void OutputProducer::check_delivery_errors() {
  if (!delivery_error_) return;
  std::string error = std::move(*delivery_error_);
  delivery_error_.reset();
  changelog_offsets_.clear();
  throw kafka::KafkaError(error, false, true);
}

std::map<int, std::int64_t> OutputProducer::take_changelog_offsets() {
  return std::exchange(changelog_offsets_, {});
}

}  // namespace pqa::scorer
