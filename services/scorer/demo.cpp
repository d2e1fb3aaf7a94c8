#include "demo.h"

// clang-format off
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>  // needs rdkafka.h first
// clang-format on

#include <atomic>
#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "config_loader.h"
#include "kafka.h"
#include "log.h"
#include "partitioning.h"
#include "pqa/synth/generator.h"
#include "stream_service.h"
#include "temp_dir.h"

namespace pqa::scorer {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct MockClusterDeleter {
  void operator()(rd_kafka_mock_cluster_t* c) const { rd_kafka_mock_cluster_destroy(c); }
};

/// librdkafka's in-process Kafka cluster, owned by a client handle of its own.
class MockCluster {
 public:
  MockCluster()
      : owner_(kafka::make_client(RD_KAFKA_PRODUCER, kafka::make_conf({{"log_level", "3"}}))),
        cluster_(rd_kafka_mock_cluster_new(owner_.get(), 1)) {
    if (!cluster_) throw kafka::KafkaError("could not start librdkafka's mock cluster");
  }
  std::string bootstrap() const { return rd_kafka_mock_cluster_bootstraps(cluster_.get()); }
  void create_topic(const std::string& name, int partitions) {
    kafka::throw_if(rd_kafka_mock_topic_create(cluster_.get(), name.c_str(), partitions, 1),
                    "creating mock topic " + name);
  }

 private:
  kafka::Handle owner_;  // declared first: destroyed after the cluster it owns
  std::unique_ptr<rd_kafka_mock_cluster_t, MockClusterDeleter> cluster_;
};

/// The value of "name":"..." or "name":number in one of our JSON lines (our own output, so a
/// plain search is enough).
std::string field(std::string_view json, std::string_view name) {
  const std::string key = "\"" + std::string(name) + "\":";
  const auto at = json.find(key);
  if (at == std::string_view::npos) return {};
  auto start = at + key.size();
  if (json[start] == '"') {
    ++start;
    return std::string(json.substr(start, json.find('"', start) - start));
  }
  return std::string(json.substr(start, json.find_first_of(",}", start) - start));
}

/// One readable line per signal.
std::string describe(std::string_view signal) {
  const std::string kind = field(signal, "kind");
  std::string what;
  if (kind == "threshold_crossed")
    what = field(signal, "previous_band") + " -> " + field(signal, "band") + " (" +
           field(signal, "routing") + ")";
  else if (kind == "seat_expansion")
    what = field(signal, "pattern") + " (" + field(signal, "routing") + ")";
  else if (kind == "routing_changed")
    what = field(signal, "previous_routing") + " -> " + field(signal, "routing") + " (" +
           field(signal, "band") + ")";
  else
    what = "new department: " + field(signal, "department");
  return field(signal, "event_time").substr(0, 19) + "  " + field(signal, "account_id") + "  " +
         kind + "  " + what + "  score " + field(signal, "score");
}

/// Prints signals as they reach the topic, until told to stop; counts them by kind.
class SignalPrinter {
 public:
  SignalPrinter(const std::string& bootstrap, const std::string& topic, int partitions)
      : topic_(topic),
        next_offset_(static_cast<std::size_t>(partitions), 0),
        consumer_(kafka::make_client(RD_KAFKA_CONSUMER,
                                     kafka::make_conf({{"bootstrap.servers", bootstrap},
                                                       {"group.id", "pqa-demo-printer"},
                                                       {"enable.auto.commit", "false"},
                                                       {"log_level", "3"}}))) {
    auto list = kafka::make_partition_list(partitions);
    for (int p = 0; p < partitions; ++p)
      rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), p)->offset =
          RD_KAFKA_OFFSET_BEGINNING;
    kafka::throw_if(rd_kafka_assign(consumer_.get(), list.get()), "assigning the signals topic");
    thread_ = std::thread([this] { loop(); });
  }
  ~SignalPrinter() { stop(); }
  SignalPrinter(const SignalPrinter&) = delete;
  SignalPrinter& operator=(const SignalPrinter&) = delete;

  /// Prints what is left up to the topic's current end, then stops.
  void stop() {
    if (!thread_.joinable()) return;
    std::vector<std::int64_t> end;
    for (std::size_t p = 0; p < next_offset_.size(); ++p)
      end.push_back(
          kafka::query_watermarks(consumer_.get(), topic_, static_cast<int>(p), 10s).second);
    end_ = std::move(end);
    stop_ = true;
    thread_.join();
  }
  const std::map<std::string, std::uint64_t>& by_kind() const { return by_kind_; }

 private:
  bool caught_up() const {
    for (std::size_t p = 0; p < end_.size(); ++p)
      if (next_offset_[p] < end_[p]) return false;
    return true;
  }

  void loop() {
    auto give_up = [this, deadline = std::optional<Clock::time_point>()]() mutable {
      if (!stop_) return false;
      if (!deadline) deadline = Clock::now() + 10s;
      return caught_up() || Clock::now() > *deadline;
    };
    while (!give_up()) {
      kafka::Message m(rd_kafka_consumer_poll(consumer_.get(), 100));
      if (!m || m->err) continue;
      next_offset_[static_cast<std::size_t>(m->partition)] = m->offset + 1;
      const std::string_view value(static_cast<const char*>(m->payload), m->len);
      ++by_kind_[field(value, "kind")];
      std::printf("%s\n", describe(value).c_str());
      std::fflush(stdout);
    }
  }

  std::string topic_;
  std::vector<std::int64_t> next_offset_;  ///< per partition: the next offset to print
  std::vector<std::int64_t> end_;          ///< set by stop(): the offsets to reach
  kafka::Handle consumer_;
  std::atomic<bool> stop_{false};
  std::map<std::string, std::uint64_t> by_kind_;
  std::thread thread_;
};

/// Sends the generated stream to the input topic, keyed by account, at the demo's rate.
std::uint64_t send_events(const DemoOptions& o, const ServiceConfig& config,
                          const std::string& bootstrap) {
  auto producer = kafka::make_client(
      RD_KAFKA_PRODUCER,
      kafka::make_conf({{"bootstrap.servers", bootstrap}, {"linger.ms", "5"}, {"log_level", "3"}}));
  const rollup::Model model(config.model);
  rollup::EventDecoder decoder(model);
  rollup::Event event;
  AccountRouter router;
  synth::Options generator;
  generator.events = o.events;
  generator.accounts = o.accounts;
  generator.seed = o.seed;
  generator.poison_rate = 0.002;  // a few bad events, to show the dead-letter topic at work
  std::uint64_t sent = 0;
  const auto start = Clock::now();
  synth::generate(generator, [&](std::string_view chunk) {
    for (std::size_t begin = 0; begin < chunk.size();) {
      const std::size_t end = chunk.find('\n', begin);
      const std::string_view line = chunk.substr(begin, end - begin);
      begin = end + 1;
      std::string key;
      if (!decoder.decode_into(line, event)) key = router.route(event).value_or("");
      const int partition = key.empty()
                                ? static_cast<int>(sent % static_cast<std::uint64_t>(o.partitions))
                                : partition_for_key(key, o.partitions);
      while (kafka::produce(producer.get(), config.kafka.input_topic, partition, key, line, nullptr,
                            0) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
        rd_kafka_poll(producer.get(), 10);
      ++sent;
      rd_kafka_poll(producer.get(), 0);
      if (o.rate > 0) {
        const auto due =
            start + std::chrono::duration_cast<Clock::duration>(
                        std::chrono::duration<double>(static_cast<double>(sent) / o.rate));
        if (due > Clock::now()) std::this_thread::sleep_until(due);
      }
    }
  });
  while (rd_kafka_outq_len(producer.get()) > 0) rd_kafka_flush(producer.get(), 1000);
  return sent;
}

ServiceConfig demo_config(const DemoOptions& o, const std::string& bootstrap,
                          const std::string& state_dir) {
  ServiceConfig config = o.config_path.empty() ? ServiceConfig{} : load_config(o.config_path);
  config.kafka.bootstrap_servers = bootstrap;
  // The mock cluster does not filter aborted transactions for read_committed readers, so the
  // demo runs at-least-once; the exactly-once path is tested against a real broker.
  config.kafka.processing = Processing::kAtLeastOnce;
  config.kafka.create_topics = false;
  config.kafka.check_topic_configs = false;  // the mock cluster has no configs to describe
  config.kafka.properties["log_level"] = "3";
  config.service.state_dir = state_dir;
  config.service.idle_advance_ms = 0;  // generated events are in the past
  return config;
}

int demo(const DemoOptions& o) {
  log::set_min_level(log::Level::kWarn);
  TempDir dir("pqa-demo");
  MockCluster cluster;
  const std::string bootstrap = cluster.bootstrap();
  const ServiceConfig config = demo_config(o, bootstrap, dir.path() + "/state");
  const auto& topics = config.kafka;
  for (const auto& name :
       {topics.input_topic, topics.signals_topic, topics.scores_topic, topics.changelog_topic})
    cluster.create_topic(name, o.partitions);
  cluster.create_topic(topics.dead_letter_topic, 1);

  std::printf(
      "pqa-scorer demo: %llu generated events for %llu accounts at %.0f/s through an "
      "in-process Kafka (%d partitions); signals as they are emitted:\n\n",
      static_cast<unsigned long long>(o.events), static_cast<unsigned long long>(o.accounts),
      o.rate, o.partitions);
  std::atomic<bool> stop{false};
  std::exception_ptr failure;
  std::unique_ptr<StreamService> service;
  ServiceMetrics metrics(rollup::Model(config.model).version(), "at_least_once");
  std::thread runner([&] {
    try {
      service = std::make_unique<StreamService>(config, stop, metrics);
      service->run();
    } catch (...) {
      failure = std::current_exception();
      stop = true;
    }
  });
  SignalPrinter printer(bootstrap, topics.signals_topic, o.partitions);
  const auto started = Clock::now();
  const std::uint64_t sent = send_events(o, config, bootstrap);
  // Wait until the service has taken every event, then let it commit and stop.
  const auto deadline = Clock::now() + 120s;
  while (!stop && Clock::now() < deadline) {
    if (metrics.events_consumed() >= sent) break;
    std::this_thread::sleep_for(50ms);
  }
  stop = true;
  runner.join();
  printer.stop();
  if (failure) std::rethrow_exception(failure);

  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  std::printf(
      "\n%llu events in %.1f s: %llu scored, %llu dead-lettered; signals:",
      static_cast<unsigned long long>(sent), seconds,
      static_cast<unsigned long long>(metrics.events_consumed() - metrics.events_rejected()),
      static_cast<unsigned long long>(metrics.events_rejected()));
  for (const auto& [kind, count] : printer.by_kind())
    std::printf(" %s %llu", kind.c_str(), static_cast<unsigned long long>(count));
  std::printf(
      ".\nThe same pipeline against a real cluster: pqa-scorer run --config "
      "config/scorer.yaml (README).\n");
  return 0;
}

}  // namespace

int run_demo(const DemoOptions& options) {
  try {
    return demo(options);
  } catch (const ConfigException& e) {
    log::error("config", e.what(), {{"key", e.key()}});
    return 2;
  } catch (const std::exception& e) {
    log::error("demo", "the demo pipeline failed", {{"error", e.what()}});
    return 3;
  }
}

}  // namespace pqa::scorer
