#include "stream_service.h"

#include <simdjson.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <exception>
#include <filesystem>
#include <map>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "changelog.h"
#include "commit_cadence.h"
#include "group_owners.h"
#include "idle_clock.h"
#include "json_output.h"
#include "kafka.h"
#include "log.h"
#include "output_producer.h"
#include "partitioning.h"
#include "processor.h"
#include "restore_worker.h"
#include "state_codec.h"

namespace pqa::scorer {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string host_name() {
  std::array<char, 256> name{};
  if (::gethostname(name.data(), name.size() - 1) != 0) return "localhost";
  return name.data();
}

/// Signals of one partition go to the signals topic, keyed by account id.
class KafkaSignalSink final : public SignalSink {
 public:
  KafkaSignalSink(OutputProducer& producer, const std::string& topic,
                  const std::string& model_version, ServiceMetrics& metrics)
      : producer_(producer), topic_(topic), model_version_(model_version), metrics_(metrics) {}
  /// While it lives, signals inherit the timestamp of the input record being processed, as
  /// Kafka Streams' outputs inherit their input's, so that a reader can tell how long an event
  /// took to become a signal; after it, however the processing ended (a throw leads to a
  /// rewind that keeps the sink), they get none (0: the producer's clock), as a timer's do.
  class InputTimestamp {
   public:
    InputTimestamp(KafkaSignalSink& sink, std::int64_t ms) : sink_(sink) {
      sink_.input_timestamp_ = ms > 0 ? ms : 0;
    }
    ~InputTimestamp() { sink_.input_timestamp_ = 0; }
    InputTimestamp(const InputTimestamp&) = delete;
    InputTimestamp& operator=(const InputTimestamp&) = delete;

   private:
    KafkaSignalSink& sink_;
  };

  void emit(const OutputSignal& signal) override {
    line_.clear();
    write_signal(line_, signal, model_version_);
    producer_.produce(topic_, -1, signal.account.str(), line_, {}, input_timestamp_);
    metrics_.count_signal(signal.signal.kind);
  }

 private:
  OutputProducer& producer_;
  const std::string& topic_;
  const std::string& model_version_;
  ServiceMetrics& metrics_;
  std::string line_;
  std::int64_t input_timestamp_ = 0;
};

}  // namespace

kafka::Properties input_consumer_properties(const KafkaConfig& c) {
  kafka::Properties p = {
      {"bootstrap.servers", c.bootstrap_servers},
      {"group.id", c.group_id},
      {"partition.assignment.strategy", "cooperative-sticky"},
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      {"auto.offset.reset", "earliest"},
      {"isolation.level", "read_committed"},
      // librdkafka 2.0 stops fetching once its queue holds queued.min.messages (default
      // 100,000) and looks again only about a second later, however soon the queue drains:
      // a service working through a backlog drained it in well under that second and then
      // waited (with the catch-up interval, removing the stall took the exactly-once rate
      // from ~0.19 to a median 0.43 of the raw consume rate, bench/RESULTS.md §5j; the restore's
      // consumer met the same stall, §5e). The count then never stops a fetch;
      // queued.max.messages.kbytes bounds the queue, and has the same stall: full, the
      // queue is looked at again only a second later, so it must hold more than a second of
      // input at the rate the loop works through a backlog. librdkafka's 64 MB held about
      // 0.8 s at 400,000 events/s, and the loop sat idle ~200 ms of every second; 128 MB
      // took the exactly-once rate through a backlog up 15-76 % (side by side) for ~180 MiB
      // more resident memory while behind (bench/RESULTS.md §5q). (librdkafka 2.4 makes the
      // second fetch.queue.backoff.ms.) The restore's consumer has its own (changelog.cpp).
      {"queued.min.messages", "10000000"},
      {"queued.max.messages.kbytes", "131072"},
  };
  if (!c.group_instance_id.empty()) p["group.instance.id"] = c.group_instance_id;
  // Names the instance in the group's description (account queries' owner, broker logs).
  p["client.id"] =
      c.group_id + "-" + (c.group_instance_id.empty() ? host_name() : c.group_instance_id);
  for (const auto& [k, v] : c.properties) p[k] = v;
  for (const auto& [k, v] : c.consumer_properties) p[k] = v;
  // What the commit protocol relies on is not the user's to change: offsets are committed
  // with the state they belong to, and only committed input is read.
  p["enable.auto.commit"] = "false";
  p["enable.auto.offset.store"] = "false";
  p["isolation.level"] = "read_committed";
  // Consumer lag per partition comes from librdkafka's statistics (metrics).
  if (!p.count("statistics.interval.ms")) p["statistics.interval.ms"] = "5000";
  return p;
}

/// One assigned input partition: its own store, processor and clock.
struct PartitionTask {
  int partition = 0;
  std::unique_ptr<StateStore> store;
  std::unique_ptr<KafkaSignalSink> sink;
  std::unique_ptr<Processor> processor;
  std::int64_t next_offset = -1;  ///< offset to commit: last processed + 1; -1: none yet
  /// The group's committed offset as last read or committed; -1: not known.
  std::int64_t committed_offset = -1;
  bool changed = false;  ///< processed or advanced since the last commit
  WriteSet committing;   ///< changes of the transaction being committed
  Clock::time_point last_event = Clock::now();
  /// From the consumer's latest statistics: whether the partition's input may be held back
  /// (a leader unknown, or an upstream transaction still open: its last stable offset below
  /// its high watermark, and read_committed delivers nothing past it); nullopt before any.
  std::optional<bool> input_held;
  /// Offset of the next event to process: after the last processed, else the committed
  /// offset; negative: not known.
  std::int64_t position() const { return next_offset >= 0 ? next_offset : committed_offset; }
  ProcessorStats published;    ///< the processor's stats as last added to the metrics
  StoreStats store_published;  ///< the store's read counts as last added to the metrics
};

struct StreamService::Impl {
  Impl(const ServiceConfig& c, const std::atomic<bool>& s, ServiceMetrics& m, AccountQueries* q);
  ~Impl();
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  void run();
  // Topics and clients.
  void check_topics();
  /// Stops start-up if an existing `topic` (the changelog, the scores) is not compacted.
  void check_compacted(const std::string& key, const std::string& topic);
  void share_memory_budget();
  // The loop.
  void handle(kafka::Message m);
  void advance_idle_partitions();
  void ensure_transaction();
  bool commit_due() const;
  /// The high watermark of librdkafka's last fetch of a partition (no broker request);
  /// nullopt until one.
  std::optional<std::int64_t> high_watermark(int partition) const;
  /// Events between a partition's position and its high_watermark(); nullopt while either is
  /// unknown.
  std::optional<std::int64_t> partition_lag(int partition, const PartitionTask& task) const;
  /// partition_lag() summed over the assigned partitions (unknown ones count nothing).
  std::int64_t input_lag() const;
  /// Picks the commit interval from input_lag().
  void observe_lag();
  void commit();
  void commit_or_rewind();
  /// Where a partition's processing starts: the group's offset, or, when the group has none in
  /// exactly-once mode, the input offset its restored state counts (changelog_input_offset).
  std::int64_t start_offset(int partition, StateStore& store, std::int64_t group_offset);
  /// The position for a partition with no offset to start from: auto.offset.reset's.
  std::int64_t reset_position() const;
  /// A list of one input partition at `offset`, for a resume, pause or seek of it.
  kafka::PartitionList input_partition(int partition, std::int64_t offset) const;
  /// handle(), but a transaction that fails meanwhile is aborted and the input rewound, as
  /// a failed commit is; false then (the turn ends).
  bool handle_or_rewind(kafka::Message m);
  /// An event below `task`'s position (its state counts it): skipped, and the fetch sought
  /// back to the position.
  void skip_counted(PartitionTask& task, std::int64_t offset, std::int64_t position);
  /// What a failed transaction leads to: abortable (or a producer that a new one cures):
  /// abort, rewind to the last commit and go on; anything else is rethrown (exit 3).
  void abort_and_rewind_or_throw(const kafka::KafkaError& e);
  void abort_failed_transaction();
  void replace_producer();
  void rewind();
  /// `committed`: the group's committed input offset of each task's partition.
  void catch_up_stores_with_changelog(const std::map<int, std::int64_t>& committed);
  void dead_letter(const rd_kafka_message_t* m, const rollup::DecodeFailure& failure);
  // Partitions.
  static void on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                           rd_kafka_topic_partition_list_t* partitions, void* opaque);
  void rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                 rd_kafka_topic_partition_list_t* partitions);
  void rethrow_callback_error();
  /// Takes the new partitions of an assignment: assigned paused, restored by `restores`.
  void assign(rd_kafka_t* rk, rd_kafka_topic_partition_list_t* partitions, bool cooperative);
  /// Waits until the group's committed offsets of `partitions` are settled; false if `halt`
  /// turns true meanwhile (shutdown, a cancelled restore). Thread-safe: the restore's thread
  /// calls it too.
  bool wait_for_stable_offsets(const std::vector<int>& partitions,
                               std::map<int, std::int64_t>& committed,
                               const std::atomic<bool>& halt) const;
  void revoke(rd_kafka_topic_partition_list_t* partitions, bool lost);
  /// On the restore's thread: the partition's settled committed offset, then its store,
  /// restored from the changelog up to what that offset counts.
  RestoredPartition restore_partition(int partition, const std::atomic<bool>& halt,
                                      std::atomic<std::int64_t>& remaining);
  /// On the loop's thread: the restores finished since the last turn, and those still waiting
  /// for their fetch to start (start()), become tasks, resumed at their start offsets.
  void take_restored();
  /// A restored partition not started yet, and where it starts.
  struct Unstarted {
    RestoredPartition restored;
    std::int64_t start = -1;  ///< start_offset(); negative: reset_position()
    bool waiting = false;     ///< its fetch found not started (logged once)
  };
  /// Resumes the partition at its start and makes it a task; false when the consumer has not
  /// started its fetch yet (it stays paused, to be tried again next turn).
  bool start(Unstarted& restored);
  /// Logs the restores cancelled (RestoreWorker::cancel) with `why`, and refreshes the gauges.
  void give_up_restores(const std::vector<RestoreWorker::Cancelled>& cancelled,
                        std::string_view why);
  /// Closes a partition's task (its store; the directory stays for a later assignment) and
  /// removes its series, after publishing what its store and processor counted since their
  /// last publication.
  void drop_task(int partition);
  void reload_processor(PartitionTask& task);
  fs::path task_dir(int partition) const;
  void update_gauges();
  // Monitoring and queries, between batches.
  void after_turn();
  void publish_processor_stats(PartitionTask& task);
  void publish_store_reads(PartitionTask& task, const StoreStats& now);
  void refresh_partition_gauges();
  HttpResponse answer_account_query(const std::string& account);
  static void on_error(rd_kafka_t* rk, int err, const char* reason, void* opaque);
  static int on_statistics(rd_kafka_t* rk, char* json, size_t len, void* opaque);
  void read_statistics(std::string_view json);

  ServiceConfig config;
  /// input_consumer_properties(config.kafka), read once (reset_position() runs every turn a
  /// partition waits for its fetch).
  kafka::Properties consumer_properties;
  const std::atomic<bool>& stop;
  rollup::Model model;
  ServiceMetrics& metrics;
  AccountQueries* queries;
  HistogramBatch event_durations{ServiceMetrics::event_duration_bounds()};
  static constexpr std::uint64_t kEventTimingSample = 32;
  std::uint64_t events_seen = 0;
  bool subscribed = false;
  bool brokers_down = false;  ///< every broker unreachable (librdkafka's error callback)
  Clock::time_point last_gauges = Clock::now();
  std::chrono::milliseconds gauge_refresh{config.admin.gauge_refresh_ms};
  simdjson::dom::parser statistics_parser;
  bool exactly_once;
  std::string transactional_id;
  kafka::Handle consumer;
  std::unique_ptr<OutputProducer> producer;
  /// The loop's own restorer: a store brought up to the changelog after a producer replacement.
  std::unique_ptr<ChangelogRestorer> restorer;
  /// New partitions are restored on this thread, with a restorer of its own (below), while the
  /// loop goes on (RestoreWorker).
  std::unique_ptr<RestoreWorker> restores;
  std::unique_ptr<ChangelogRestorer> background_restorer;
  /// Restored partitions whose fetch the consumer has not started yet (start()).
  std::map<int, Unstarted> unstarted;
  std::map<int, std::unique_ptr<PartitionTask>> tasks;
  int input_partitions = 0;
  bool transaction_open = false;
  int producer_replacements = 0;  ///< since the last successful commit
  /// Set when a producer is replaced: its last transaction may have committed after all
  /// (init_transactions completes a commit the coordinator had begun), so the next rewind
  /// brings each store up to the changelog instead of trusting it.
  bool outcome_unknown = false;
  /// When the last commit began. Commits keep a fixed cadence from it (as Kafka Streams'
  /// commit.interval.ms): the time a commit takes is part of the interval, not added to it,
  /// so an event waits at most about one interval plus one commit.
  Clock::time_point last_commit_started = Clock::now();
  CommitCadence cadence;
  std::size_t events_since_commit = 0;
  Clock::time_point last_idle_check = Clock::now();
  /// Silence the loop has watched: a stall of the loop restarts every partition's idle time.
  IdleClock idle_clock;
  Clock::time_point turn_started = Clock::now();  ///< when the loop's current turn began
  /// The latest event time accepted this turn: the wall clock plus max_clock_jump_days.
  rollup::TimeMs time_ceiling = rollup::kNoTime;
  std::exception_ptr callback_error;  ///< thrown inside a librdkafka callback, rethrown later
  bool tearing_down = false;  ///< set by ~Impl: the consumer's last callbacks touch no state
  /// Who owns the partitions this instance does not (account queries); declared last so that
  /// its thread stops before the producer whose handle it uses goes away.
  std::unique_ptr<GroupOwners> owners;
};

StreamService::Impl::~Impl() {
  // When an error ended run(), the consumer still holds its partitions, and destroying it
  // closes it, which calls the rebalance callback. Left to the members' order it would run
  // after the tasks and the producer are gone (they are declared after it). So it goes first,
  // with callbacks that only drop the partitions: the uncommitted work is discarded, and a
  // restart resumes from the last commit.
  tearing_down = true;
  restores.reset();  // its job uses the consumer (committed offsets)
  unstarted.clear();
  background_restorer.reset();  // it refers to the worker's flags
  owners.reset();
  consumer.reset();
}

void StreamService::Impl::rethrow_callback_error() {
  if (callback_error) std::rethrow_exception(std::exchange(callback_error, nullptr));
}

StreamService::Impl::Impl(const ServiceConfig& c, const std::atomic<bool>& s, ServiceMetrics& m,
                          AccountQueries* q)
    : config(c),
      consumer_properties(input_consumer_properties(c.kafka)),
      stop(s),
      model(c.model),
      metrics(m),
      queries(q),
      exactly_once(c.kafka.processing == Processing::kExactlyOnce),
      cadence(c.kafka.commit_interval_ms, c.kafka.catch_up),
      idle_clock(
          std::chrono::milliseconds(c.service.idle_advance_ms),
          // A loop turn normally lasts well under a second (a poll of at most 100 ms,
          // max_batch_events events, a commit); a stop of the loop this long is a stall. At
          // most half the idle time (unseen time stays below it), never below 1 s (a quiet
          // loop's poll would count as one).
          std::clamp<Clock::duration>(std::chrono::milliseconds(c.service.idle_advance_ms) / 2,
                                      std::chrono::seconds(1), std::chrono::seconds(5)),
          Clock::now()) {
  if (config.kafka.bootstrap_servers.empty())
    throw ConfigException("kafka.bootstrap_servers", "must be set to run the service");
  // The service writes to the store only after Kafka has the same changes (commit()).
  config.processor.auto_flush = false;
  config.processor.flush_every_events = ~std::size_t{0};
  metrics.set_commit_interval(cadence.interval());
  if (exactly_once) {
    transactional_id = config.kafka.transactional_id;
    if (transactional_id.empty())
      transactional_id =
          config.kafka.group_id + "-" +
          (config.kafka.group_instance_id.empty() ? host_name() : config.kafka.group_instance_id);
  }
  if (std::error_code ec; !fs::create_directories(config.service.state_dir, ec) && ec)
    throw ConfigException("service.state_dir",
                          "cannot create '" + config.service.state_dir + "': " + ec.message());
  producer = std::make_unique<OutputProducer>(config.kafka, transactional_id, stop);
  check_topics();
  share_memory_budget();
  // The restore consumers are told apart from the processing one in the brokers' metrics, logs
  // and quotas: its client id with "-restore" appended, unless given.
  KafkaConfig restore_config = config.kafka;
  restore_config.restore_consumer_properties.try_emplace(
      "client.id", consumer_properties.at("client.id") + "-restore");
  restorer = std::make_unique<ChangelogRestorer>(restore_config, stop);
  restorer->on_progress(
      [this](int, std::uint64_t applied, std::int64_t) { metrics.add_restored_records(applied); });
  restores = std::make_unique<RestoreWorker>();
  background_restorer = std::make_unique<ChangelogRestorer>(restore_config, restores->halt());
  auto conf = kafka::make_conf(consumer_properties);
  rd_kafka_conf_set_rebalance_cb(conf.get(), &Impl::on_rebalance);
  rd_kafka_conf_set_error_cb(conf.get(), &Impl::on_error);
  rd_kafka_conf_set_stats_cb(conf.get(), &Impl::on_statistics);
  rd_kafka_conf_set_opaque(conf.get(), this);
  consumer = kafka::make_client(RD_KAFKA_CONSUMER, std::move(conf));
  rd_kafka_poll_set_consumer(consumer.get());
  if (queries != nullptr)
    owners = std::make_unique<GroupOwners>(producer->handle(), config.kafka.group_id,
                                           config.kafka.input_topic);
  log::info("service", "started",
            {{"input", config.kafka.input_topic},
             {"partitions", std::to_string(input_partitions)},
             {"processing", exactly_once ? "exactly_once" : "at_least_once"},
             {"transactional_id", transactional_id},
             {"state_dir", config.service.state_dir},
             {"model_version", model.version()}});
}

void StreamService::Impl::check_topics() {
  const auto timeout = std::chrono::milliseconds(config.kafka.timeout_ms);
  const KafkaConfig& k = config.kafka;
  rd_kafka_t* rk = producer->handle();
  std::optional<int> input;
  try {
    input = kafka::partition_count(rk, k.input_topic, timeout);
  } catch (const kafka::KafkaError&) {
    producer->throw_if_security_failure();  // the reason when it is one, not just "timed out"
    throw;
  }
  if (!input)
    throw ConfigException("kafka.topics.input",
                          "topic '" + k.input_topic + "' does not exist (create it first)");
  input_partitions = *input;
  std::vector<kafka::TopicSpec> missing;
  const kafka::Properties compacted = {{"cleanup.policy", "compact"}};
  const std::vector<std::tuple<std::string, std::string, int, kafka::Properties>> outputs = {
      {"kafka.topics.signals", k.signals_topic, input_partitions, {}},
      {"kafka.topics.scores", k.scores_topic, input_partitions, compacted},
      {"kafka.topics.changelog", k.changelog_topic, input_partitions, compacted},
      {"kafka.topics.dead_letter", k.dead_letter_topic, 1, {}},
  };
  for (const auto& [key, name, partitions, topic_config] : outputs) {
    auto count = kafka::partition_count(rk, name, timeout);
    if (!count) {
      if (!k.create_topics)
        throw ConfigException(key, "topic '" + name +
                                       "' does not exist (create it, or set "
                                       "kafka.topics.create: true)");
      missing.push_back({name, partitions, k.replication_factor, topic_config});
      continue;
    }
    // The changelog partition of an input partition has the same number.
    if (name == k.changelog_topic && *count != input_partitions)
      throw ConfigException(key, "topic '" + name + "' has " + std::to_string(*count) +
                                     " partitions; it needs as many as the input topic (" +
                                     std::to_string(input_partitions) + ")");
    if (!topic_config.empty() && k.check_topic_configs) check_compacted(key, name);
  }
  if (!missing.empty()) {
    kafka::create_topics(rk, missing, timeout);
    for (const auto& t : missing)
      log::info("service", "created topic",
                {{"topic", t.name}, {"partitions", std::to_string(t.partitions)}});
  }
}

void StreamService::Impl::check_compacted(const std::string& key, const std::string& topic) {
  // A changelog that retention deletes from loses the state of quiet accounts at the next
  // rebuild; a scores topic, the latest score of quiet accounts.
  const auto policy =
      kafka::describe_topic_config(producer->handle(), topic, "cleanup.policy",
                                   std::chrono::milliseconds(config.kafka.timeout_ms));
  if (!policy.value) {  // e.g. no DescribeConfigs permission: not a reason to stop
    log::warn("service", "cannot check the topic's cleanup.policy",
              {{"topic", topic}, {"error", policy.error}});
    return;
  }
  // Exactly "compact": with "compact,delete" retention still deletes a quiet account's record.
  if (*policy.value != "compact")
    throw ConfigException(key, "topic '" + topic + "' has cleanup.policy=" + *policy.value +
                                   "; it must be compact alone (cleanup.policy=compact)");
}

void StreamService::Impl::share_memory_budget() {
  // The memory settings bound the instance, not each partition: the RocksDB stores share one
  // cache and write-buffer budget, and each partition's caches and new-key filter get 1/N of
  // the configured size (N input partitions), so that owning every partition stays within it.
  config.rocksdb.shared_memory = make_shared_rocksdb_memory(config.rocksdb.block_cache_bytes,
                                                            config.rocksdb.write_buffer_bytes);
  // A share is never rounded down to 0, and 0 (a setting that is off) stays 0.
  const auto share = [this](std::size_t& size) {
    if (size > 0)
      size = std::max<std::size_t>(1, size / static_cast<std::size_t>(input_partitions));
  };
  share(config.processor.account_cache_entries);
  share(config.processor.user_cache_entries);
  share(config.processor.identity_cache_entries);
  share(config.processor.max_pending_bytes);
  share(config.rocksdb.new_key_filter_bytes);
}

fs::path StreamService::Impl::task_dir(int partition) const {
  return fs::path(config.service.state_dir) / ("partition-" + std::to_string(partition));
}

RestoredPartition StreamService::Impl::restore_partition(int partition,
                                                         const std::atomic<bool>& halt,
                                                         std::atomic<std::int64_t>& remaining) {
  RestoredPartition restored;
  restored.partition = partition;
  // Read before the restore, settled (see wait_for_stable_offsets), so that the restore does
  // not stop short of a commit the offset already counts.
  std::map<int, std::int64_t> committed;
  if (!wait_for_stable_offsets({partition}, committed, halt) || halt)
    throw RestoreInterrupted("restore interrupted");
  restored.committed_offset = committed.at(partition);
  RocksDbOptions db = config.rocksdb;
  db.path = task_dir(partition).string();
  restored.store = open_rocksdb_store(db);
  if (halt) throw RestoreInterrupted("restore interrupted");
  // The loop publishes `remaining` (a partition's series may be removed under this thread).
  background_restorer->on_progress(
      [this, &remaining](int, std::uint64_t applied, std::int64_t left) {
        metrics.add_restored_records(applied);
        remaining = left;
      });
  // At least once writes the changelog before committing offsets, so its state is never
  // behind the group's offset: there is no commit to wait for.
  restored.result = background_restorer->restore(*restored.store, partition,
                                                 exactly_once ? restored.committed_offset : -1);
  return restored;
}

void StreamService::Impl::give_up_restores(const std::vector<RestoreWorker::Cancelled>& cancelled,
                                           std::string_view why) {
  for (const auto& c : cancelled)
    log::info("restore", "restore given up: " + std::string(why),
              {{"partition", std::to_string(c.partition)},
               {"was_running", c.was_running ? "true" : "false"}});
  if (!cancelled.empty()) update_gauges();
}

void StreamService::Impl::take_restored() {
  for (RestoredPartition& restored : restores->take_finished()) {
    const int p = restored.partition;
    log::info("restore", "partition restored",
              {{"partition", std::to_string(p)},
               {"committed_input_offset", std::to_string(restored.committed_offset)},
               {"records", std::to_string(restored.result.records)},
               {"rebuilt", restored.result.rebuilt ? "true" : "false"},
               {"seconds", std::to_string(restored.result.seconds)}});
    metrics.partition(p).restore_remaining->Set(0);
    const std::int64_t start = start_offset(p, *restored.store, restored.committed_offset);
    unstarted.emplace(p, Unstarted{std::move(restored), start});
  }
  // An exception from start() (a resume or seek refused) ends the service (exit 3): the
  // partitions not started yet are dropped with it.
  const std::size_t waiting = unstarted.size();
  for (auto it = unstarted.begin(); it != unstarted.end();)
    it = start(it->second) ? unstarted.erase(it) : std::next(it);
  if (unstarted.size() != waiting) update_gauges();  // ready once none is restoring
  if (const auto running = restores->running())
    metrics.partition(running->first).restore_remaining->Set(static_cast<double>(running->second));
}

bool StreamService::Impl::start(Unstarted& restored) {
  const int p = restored.restored.partition;
  // Resumed, then sought to where its state ends: assigned and paused in one callback,
  // librdkafka can lose the assignment's start (its issue 2190, "seek after resuming"), and a
  // seek also drops anything fetched for it before.
  auto list = input_partition(p, restored.start >= 0 ? restored.start : reset_position());
  kafka::throw_if(rd_kafka_resume_partitions(consumer.get(), list.get()), "resuming a partition");
  const kafka::SeekOutcome sought =
      kafka::seek(consumer.get(), list.get(), config.kafka.timeout_ms);
  // librdkafka starts an assigned partition's fetch once it has the group's committed offsets,
  // which it asks for the whole assignment at once: a transaction holding any one partition's
  // offsets holds back every partition of the assignment (the restore has its own answer).
  // Until then a seek finds no fetch to move; the partition stays paused and is tried again.
  if (sought.code == RD_KAFKA_RESP_ERR__STATE ||
      sought.code == RD_KAFKA_RESP_ERR__PREV_IN_PROGRESS) {
    kafka::throw_if(rd_kafka_pause_partitions(consumer.get(), list.get()), "pausing a partition");
    if (!std::exchange(restored.waiting, true))
      log::info("restore", "restored; waiting for the consumer to start the partition's fetch",
                {{"partition", std::to_string(p)}, {"error", sought.reason}});
    return false;
  }
  kafka::throw_if(sought, "seeking a restored partition to its start");
  auto task = std::make_unique<PartitionTask>();
  task->partition = p;
  task->store = std::move(restored.restored.store);
  task->sink = std::make_unique<KafkaSignalSink>(*producer, config.kafka.signals_topic,
                                                 model.version(), metrics);
  reload_processor(*task);
  task->committed_offset = restored.start;
  tasks[p] = std::move(task);
  log::info("service", "partition assigned", {{"partition", std::to_string(p)}});
  return true;
}

void StreamService::Impl::reload_processor(PartitionTask& task) {
  // What it counted this turn (events consumed, rejected, timers fired) happened all the same.
  if (task.processor) publish_processor_stats(task);
  task.processor.reset();  // its caches may hold changes that were never committed
  task.processor = std::make_unique<Processor>(model, *task.store, *task.sink, config.processor);
  task.next_offset = -1;
  task.changed = false;
  task.last_event = Clock::now();
  task.published = {};  // a new processor counts from zero
}

void StreamService::Impl::on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                                       rd_kafka_topic_partition_list_t* partitions, void* opaque) {
  auto* self = static_cast<Impl*>(opaque);
  // An exception must not unwind through librdkafka's C frames: it is kept and rethrown by
  // the loop once the poll has returned.
  try {
    self->rebalance(rk, err, partitions);
  } catch (...) {
    if (!self->callback_error) self->callback_error = std::current_exception();
  }
}

void StreamService::Impl::rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                                    rd_kafka_topic_partition_list_t* partitions) {
  const bool cooperative = std::string_view(rd_kafka_rebalance_protocol(rk)) == "COOPERATIVE";
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    if (tearing_down) return;
    metrics.count_rebalance(ServiceMetrics::Rebalance::kAssigned);
    assign(rk, partitions, cooperative);
  } else {
    // Closing after an error (~Impl): the partitions are given up and nothing is committed.
    if (!tearing_down) {
      const bool lost = rd_kafka_assignment_lost(rk) != 0;
      metrics.count_rebalance(lost ? ServiceMetrics::Rebalance::kLost
                                   : ServiceMetrics::Rebalance::kRevoked);
      revoke(partitions, lost);
    }
    if (cooperative)
      kafka::throw_if(rd_kafka_incremental_unassign(rk, partitions), "incremental_unassign");
    else
      kafka::throw_if(rd_kafka_assign(rk, nullptr), "unassign");
  }
  update_gauges();
}

void StreamService::Impl::assign(rd_kafka_t* rk, rd_kafka_topic_partition_list_t* partitions,
                                 bool cooperative) {
  if (cooperative)
    kafka::throw_if(rd_kafka_incremental_assign(rk, partitions), "incremental_assign");
  else
    kafka::throw_if(rd_kafka_assign(rk, partitions), "assign");
  // The new partitions are paused until their state is restored, so no event meets missing
  // or stale state, and restored off the loop (RestoreWorker), which meanwhile goes on polling
  // the group and processing the partitions it has: a restore inside this callback would stop
  // both for as long as it lasts (docs/architecture.md, "Rebalances").
  auto fresh = kafka::make_partition_list(partitions->cnt);
  for (int i = 0; i < partitions->cnt; ++i) {
    const int p = partitions->elems[i].partition;
    // Partitions added to the input while running: the changelog has none to restore it from
    // (its restore would wait for ever, and every restore queued behind it), and accounts
    // have moved between partitions with the count. Stopped, the start-up check says so too.
    if (p >= input_partitions)
      throw ConfigException(
          "kafka.topics.input",
          "partition " + std::to_string(p) + " of '" + config.kafka.input_topic +
              "' was assigned, but the topic had " + std::to_string(input_partitions) +
              " partitions at start-up, as many as the changelog: partitions were added while "
              "running, which moves accounts between partitions; stop every instance and follow "
              "docs/operations.md (Scaling and recovery) before starting again");
    if (tasks.count(p) == 0 && !restores->pending(p) && !unstarted.count(p))
      rd_kafka_topic_partition_list_add(fresh.get(), config.kafka.input_topic.c_str(), p);
  }
  if (fresh->cnt == 0) return;
  kafka::throw_if(rd_kafka_pause_partitions(rk, fresh.get()), "pausing partitions to restore");
  // Shutting down (an assignment served while the consumer closes): not restored; the restore
  // would ask a closing consumer for committed offsets, and the next owner restores them anyway.
  if (stop) return;
  for (int i = 0; i < fresh->cnt; ++i) {
    const int p = fresh->elems[i].partition;
    // Not ready while restoring (/readyz, pqa_ready); the gauges say how far it got.
    metrics.partition(p);  // its series, restore_remaining_records among them, from now on
    restores->start(p,
                    [this, p](const std::atomic<bool>& halt, std::atomic<std::int64_t>& remaining) {
                      return restore_partition(p, halt, remaining);
                    });
    log::info("restore", "restoring a newly assigned partition",
              {{"partition", std::to_string(p)}});
  }
}

std::int64_t StreamService::Impl::start_offset(int partition, StateStore& store,
                                               std::int64_t group_offset) {
  if (group_offset >= 0 || !exactly_once) return group_offset;
  // No offset in the group, yet a state that counts input: the group's offsets expired
  // (offsets.retention.minutes after the group was empty) or were deleted, or the group was
  // renamed, while the changelog was kept. auto.offset.reset would process the partition
  // from its start again on top of that state, counting every event twice. In exactly-once
  // mode the changelog's input offset was committed with the state, in the same transaction
  // as the group's offset was: it is where the state ends. (At least once writes the
  // changelog before the offsets, and signals of the last interval may not have been
  // delivered: there the group's offset, or the reset, is the safe start.)
  const auto counted = changelog_input_offset(store);
  if (!counted) return group_offset;
  log::warn("service",
            "the group has no committed offset for the partition, but its state counts input "
            "up to an offset: resuming there (group offsets expired or deleted?)",
            {{"partition", std::to_string(partition)}, {"input_offset", std::to_string(*counted)}});
  return *counted;
}

kafka::PartitionList StreamService::Impl::input_partition(int partition,
                                                          std::int64_t offset) const {
  auto list = kafka::make_partition_list(1);
  rd_kafka_topic_partition_list_add(list.get(), config.kafka.input_topic.c_str(), partition)
      ->offset = offset;
  return list;
}

std::int64_t StreamService::Impl::reset_position() const {
  // The consumer's own setting, as librdkafka would apply it to a partition without a
  // committed offset; "error" is not honoured here: the start of the partition, as by default.
  const std::string& reset = consumer_properties.at("auto.offset.reset");
  return reset == "latest" || reset == "largest" || reset == "end" ? RD_KAFKA_OFFSET_END
                                                                   : RD_KAFKA_OFFSET_BEGINNING;
}

bool StreamService::Impl::wait_for_stable_offsets(const std::vector<int>& partitions,
                                                  std::map<int, std::int64_t>& committed,
                                                  const std::atomic<bool>& halt) const {
  // A previous owner's transaction may still hold these partitions' offsets (it commits or
  // aborts after its member left the group). Asked with read_committed, the group answers
  // only once it is settled, so the restore that follows does not stop short of a commit
  // the offsets already count. (Kafka Streams reads committed offsets before restoring for
  // the same reason.) The coordinator writes the transaction's markers partition by
  // partition, so a changelog partition's stable end can still trail the offsets' by a
  // moment: the restore is given the offsets and reads on until its changelog reaches them
  // (changelog_meta::kInputOffset). Like the restore, this waits out any error until shutdown.
  auto list = kafka::make_partition_list(static_cast<int>(partitions.size()));
  for (const int p : partitions)
    rd_kafka_topic_partition_list_add(list.get(), config.kafka.input_topic.c_str(), p);
  constexpr int kWarnEvery = 20;
  for (int attempt = 0; !halt; ++attempt) {
    rd_kafka_resp_err_t err =
        rd_kafka_committed(consumer.get(), list.get(), config.kafka.timeout_ms);
    for (int i = 0; err == RD_KAFKA_RESP_ERR_NO_ERROR && i < list->cnt; ++i)
      err = list->elems[i].err;
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      for (int i = 0; i < list->cnt; ++i)
        committed[list->elems[i].partition] = list->elems[i].offset;
      return true;
    }
    if (halt) break;  // e.g. a closing consumer's answer: no warning, no wait
    if (attempt % kWarnEvery == 0)
      log::warn("service", "committed offsets of assigned partitions not readable yet; waiting",
                {{"error", rd_kafka_err2str(err)}, {"attempt", std::to_string(attempt + 1)}});
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  return false;
}

void StreamService::Impl::revoke(rd_kafka_topic_partition_list_t* partitions, bool lost) {
  // Restores of these partitions are given up first: queued ones dropped, a running one halted
  // (its outcome dropped; the partition's series, removed below, are not its to touch).
  std::vector<int> taken_away;
  for (int i = 0; i < partitions->cnt; ++i) taken_away.push_back(partitions->elems[i].partition);
  auto cancelled = restores->cancel(taken_away);
  for (const int p : taken_away)
    if (unstarted.erase(p) > 0) cancelled.push_back({p, false});  // its store closes here
  give_up_restores(cancelled, "the partition was taken away");
  if (lost) {
    // Another member may own them already: nothing uncommitted of theirs may land, so the
    // open transaction is aborted and the partitions kept are rewound to their last commit.
    for (int i = 0; i < partitions->cnt; ++i) drop_task(partitions->elems[i].partition);
    if (events_since_commit > 0 || transaction_open) {
      log::warn("service", "partitions lost; discarding uncommitted work");
      if (transaction_open) {
        abort_failed_transaction();
        metrics.count_transaction(false);
      }
      rewind();
    }
  } else if (events_since_commit > 0) {
    commit_or_rewind();  // the generation is still valid: the work done so far is committed
  }
  for (int i = 0; i < partitions->cnt; ++i) {
    const int p = partitions->elems[i].partition;
    drop_task(p);
    log::info("service", lost ? "partition lost" : "partition revoked",
              {{"partition", std::to_string(p)}});
  }
}

void StreamService::Impl::update_gauges() {
  // Restores started and neither taken nor given up (none once ~Impl has dropped the worker).
  const auto restoring = restores ? static_cast<int>(restores->pending() + unstarted.size()) : 0;
  metrics.set_assigned_partitions(static_cast<int>(tasks.size()));
  metrics.set_restoring_partitions(restoring);
  metrics.set_ready(subscribed && restoring == 0 && !brokers_down);
}

void StreamService::Impl::ensure_transaction() {
  if (!exactly_once || transaction_open) return;
  producer->begin_transaction();
  transaction_open = true;
}

void StreamService::Impl::dead_letter(const rd_kafka_message_t* m,
                                      const rollup::DecodeFailure& failure) {
  Headers headers = {
      {"pqa.error.reason", std::string(rollup::to_string(failure.code))},
      {"pqa.error.message", failure.message()},
      {"pqa.source.topic", rd_kafka_topic_name(m->rkt)},
      {"pqa.source.partition", std::to_string(m->partition)},
      {"pqa.source.offset", std::to_string(m->offset)},
  };
  std::string_view key(static_cast<const char*>(m->key), m->key_len);
  std::string_view payload(static_cast<const char*>(m->payload), m->len);
  // Brokers accept input records somewhat larger than a producer may send (message.max.bytes):
  // such a message is dead-lettered cut to what fits, with its size in a header, rather than
  // refused on every retry. The source offset still leads to the whole message. A key of more
  // than a quarter of the record is cut too: the value's room is what the key leaves, and a
  // key alone can be over the limit.
  if (const std::size_t max_key = producer->max_record_bytes() / 4; key.size() > max_key) {
    headers.emplace_back("pqa.error.key_truncated_from_bytes", std::to_string(key.size()));
    key = key.substr(0, max_key);
  }
  const std::size_t room = kafka::value_room(producer->max_record_bytes(), key.size());
  if (payload.size() > room) {
    headers.emplace_back("pqa.error.truncated_from_bytes", std::to_string(payload.size()));
    payload = payload.substr(0, room);
  }
  producer->produce(config.kafka.dead_letter_topic, -1, key, payload, headers);
  metrics.count_dead_letter();
}

void StreamService::Impl::handle(kafka::Message m) {
  if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) return;
    log::warn("consumer", "consume error", {{"error", rd_kafka_message_errstr(m.get())}});
    return;
  }
  auto it = tasks.find(m->partition);
  if (it == tasks.end()) return;  // revoked while queued: its new owner processes it
  PartitionTask& task = *it->second;
  if (const std::int64_t position = task.position(); position >= 0 && m->offset < position) {
    skip_counted(task, m->offset, position);
    return;
  }
  ensure_transaction();
  const std::string_view payload(static_cast<const char*>(m->payload), m->len);
  rd_kafka_timestamp_type_t timestamp_type = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
  const std::int64_t timestamp = rd_kafka_message_timestamp(m.get(), &timestamp_type);
  task.processor->set_time_ceiling(time_ceiling);
  std::optional<rollup::DecodeFailure> failure;
  {
    const KafkaSignalSink::InputTimestamp stamped(*task.sink, timestamp);
    // One event in kEventTimingSample is timed: two clock reads per event cost ~6% of the
    // service's CPU (perf), and a sample gives the histogram the same shape.
    if (++events_seen % kEventTimingSample == 0) {
      const auto started = Clock::now();
      failure = task.processor->process(payload);
      event_durations.observe(std::chrono::duration<double>(Clock::now() - started).count());
    } else {
      failure = task.processor->process(payload);
    }
  }
  if (failure) dead_letter(m.get(), *failure);
  task.next_offset = m->offset + 1;
  task.changed = true;
  task.last_event = turn_started;  // one clock read per loop turn, not per message
  ++events_since_commit;
}

void StreamService::Impl::skip_counted(PartitionTask& task, std::int64_t offset,
                                       std::int64_t position) {
  // The state counts every event below the position, and offsets only grow: an event below
  // it was delivered because the fetch moved back behind the service's seek. librdkafka does
  // that when the seek lands while it still looks up auto.offset.reset's offset for a
  // partition the group has no offset for (its issue 2256): the late answer undoes the seek.
  // The event is not counted again, and the fetch is sought back to the position once more
  // (the lookup is over by now), rather than read up to it.
  //
  // Unless the position lies past the partition's end: then the fetch was reset because the
  // position is out of range, and seeking back to it only resets it again, for ever, while the
  // events from the log's start sit unread (and the idle advance fires timers ahead of them).
  // The input was recreated or truncated under a state that counted more: stop, and say so.
  // (Asked of the broker, not of the statistics, which may be seconds old; an unanswered
  // question leaves it to the seek, as before, and the next delivery asks again.)
  std::int64_t high = -1;
  try {
    high = kafka::query_watermarks(consumer.get(), config.kafka.input_topic, task.partition,
                                   std::chrono::milliseconds(config.kafka.timeout_ms))
               .second;
  } catch (const kafka::KafkaError&) {  // unanswered: the seek below, as before
  }
  if (high >= 0 && position > high)
    throw kafka::KafkaError(
        "input partition " + std::to_string(task.partition) + " of " + config.kafka.input_topic +
            " ends at offset " + std::to_string(high) + ", before the position " +
            std::to_string(position) +
            " its state has counted up to: the topic was recreated or truncated (or the group's "
            "offsets were set past its end). Scoring it from offset " +
            std::to_string(offset) +
            " would skip new events as counted ones; start over with a new group and new output "
            "topics (docs/operations.md, Model change), or set the group's offsets within it",
        true);
  log::warn("consumer", "input delivered below the partition's position (a seek undone); skipped",
            {{"partition", std::to_string(task.partition)},
             {"offset", std::to_string(offset)},
             {"position", std::to_string(position)}});
  auto list = input_partition(task.partition, position);
  kafka::throw_if(kafka::seek(consumer.get(), list.get(), config.kafka.timeout_ms),
                  "seeking a partition back to its position");
}

void StreamService::Impl::advance_idle_partitions() {
  const int idle_ms = config.service.idle_advance_ms;
  if (idle_ms <= 0) return;
  const auto now = Clock::now();
  idle_clock.polled(now);  // after this turn's polls: a rebalance callback may have stalled them
  if (now - last_idle_check < std::chrono::seconds(1)) return;
  last_idle_check = now;
  // Silence is only what the brokers say it is: not while they are unreachable.
  if (brokers_down) return;
  const rollup::TimeMs target = wall_ms() - idle_ms;
  for (auto& [p, task] : tasks) {
    if (!idle_clock.idle(task->last_event, now)) continue;
    // A partition never fetched is not known to be idle. (A position below the high watermark
    // is no sign of waiting input: behind a transactional producer's last commit marker the
    // position stays one short for good.) Nor is one whose input is held back: events of an
    // upstream transaction still open arrive once it commits, and advancing first would fire
    // timers before them (signals that replay of the same input would not give).
    if (!high_watermark(p) || task->input_held.value_or(true)) continue;
    if (task->processor->watermark() == rollup::kNoTime || task->processor->watermark() >= target)
      continue;
    ensure_transaction();
    task->processor->advance_to(target);
    task->changed = true;
    ++events_since_commit;
  }
}

bool StreamService::Impl::commit_due() const {
  if (events_since_commit == 0) return false;
  if (Clock::now() - last_commit_started >= cadence.interval()) return true;
  for (const auto& [p, task] : tasks)
    if (task->processor->changes_over_bound()) return true;
  return false;
}

std::optional<std::int64_t> StreamService::Impl::partition_lag(int partition,
                                                               const PartitionTask& task) const {
  // The high watermark is not the last stable offset, so records of an upstream transaction
  // still open count as lag too; catch_up.lag_events is far above what one usually holds.
  const auto high = high_watermark(partition);
  if (!high) return std::nullopt;
  // A position not known yet (nothing processed since the assignment, and none committed in the
  // group) is not guessed: its start could be a whole retained log.
  const std::int64_t position = task.position();
  if (position < 0) return std::nullopt;
  return std::max<std::int64_t>(0, *high - position);
}

std::optional<std::int64_t> StreamService::Impl::high_watermark(int partition) const {
  std::int64_t low = -1, high = -1;
  if (rd_kafka_get_watermark_offsets(consumer.get(), config.kafka.input_topic.c_str(), partition,
                                     &low, &high) != RD_KAFKA_RESP_ERR_NO_ERROR ||
      high < 0)
    return std::nullopt;
  return high;
}

std::int64_t StreamService::Impl::input_lag() const {
  std::int64_t lag = 0;
  for (const auto& [p, task] : tasks) lag += partition_lag(p, *task).value_or(0);
  return lag;
}

void StreamService::Impl::observe_lag() {
  const std::int64_t lag = input_lag();
  const auto change = cadence.observe_lag(lag);
  if (change == CommitCadence::Change::kNone) return;
  metrics.set_commit_interval(cadence.interval());
  log::info("service",
            change == CommitCadence::Change::kEntered
                ? "input far behind: longer transactions until caught up"
                : "caught up: back to the configured commit interval",
            {{"lag_events", std::to_string(lag)},
             {"commit_interval_ms", std::to_string(cadence.interval().count())}});
}

void StreamService::Impl::commit() {
  const auto started = Clock::now();
  last_commit_started = started;
  ensure_transaction();
  auto offsets = kafka::make_partition_list(static_cast<int>(tasks.size()));
  for (auto& [p, task] : tasks) {
    if (!task->changed) continue;
    // Each changed account's latest score, as of its own clock: what the CRM field shows.
    task->committing = task->processor->take_changes(
        [this](std::string_view account, const rollup::AccountState& state) {
          const auto score = rollup::evaluate(model, state, state.clock);
          producer->produce(config.kafka.scores_topic, -1, account,
                            score_to_json(rollup::AccountId(std::string(account)), score,
                                          state.clock, model.version()));
        });
    for (const auto& [key, value] : task->committing.puts)
      producer->produce(config.kafka.changelog_topic, p, key, value);
    // Every task with outputs sends its offset, even unchanged (only timers fired since a
    // rewind): the group checks the generation of each offset commit, which is what keeps a
    // member that lost its partitions from committing outputs for them. A partition with no
    // offset at all (none consumed, none committed) has none to send (docs/architecture.md).
    const std::int64_t offset = task->position();
    if (offset < 0) continue;
    rd_kafka_topic_partition_list_add(offsets.get(), config.kafka.input_topic.c_str(), p)->offset =
        offset;
    // The same offset in the changelog, in the same transaction: a restore that finds it
    // below the group's offset knows the commit is not settled there yet (ChangelogRestorer).
    auto& [key, value] = task->committing.puts.emplace_back(
        keys::meta(changelog_meta::kInputOffset), std::to_string(offset));
    producer->produce(config.kafka.changelog_topic, p, key, value);
  }
  if (exactly_once) {
    producer->commit_transaction(offsets.get(), consumer.get());
    transaction_open = false;
  } else {
    producer->flush_all();
    // A failed offset commit (e.g. a rebalance under way) rewinds like an aborted transaction:
    // the interval is reprocessed, and its signals repeat with the same ids.
    if (offsets->cnt > 0)
      if (const auto err = rd_kafka_commit(consumer.get(), offsets.get(), 0))
        throw kafka::KafkaError(std::string("committing offsets: ") + rd_kafka_err2str(err), false,
                                /*abortable=*/true);
  }
  for (int i = 0; i < offsets->cnt; ++i)
    if (auto it = tasks.find(offsets->elems[i].partition); it != tasks.end())
      it->second->committed_offset = offsets->elems[i].offset;
  // Kafka holds the changes now; the local store follows, with the changelog position.
  const auto changelog_offsets = producer->take_changelog_offsets();
  for (auto& [p, task] : tasks) {
    if (!task->changed) continue;
    if (auto at = changelog_offsets.find(p); at != changelog_offsets.end())
      task->committing.puts.emplace_back(keys::meta(changelog_meta::kOffset),
                                         std::to_string(at->second));
    task->store->commit(task->committing);
    task->committing = {};
    task->changed = false;
  }
  events_since_commit = 0;
  metrics.count_transaction(true);
  metrics.observe_commit_duration(std::chrono::duration<double>(Clock::now() - started).count());
}

void StreamService::Impl::commit_or_rewind() {
  try {
    commit();
    producer_replacements = 0;
  } catch (const kafka::KafkaError& e) {
    abort_and_rewind_or_throw(e);
  }
}

bool StreamService::Impl::handle_or_rewind(kafka::Message m) {
  try {
    handle(std::move(m));
    return true;
  } catch (const kafka::KafkaError& e) {
    // A record refused mid-interval: the transaction failed (a delivery timed out, say) and
    // librdkafka takes no more records into it. Handled as a failed commit, not as an exit.
    abort_and_rewind_or_throw(e);
    return false;
  }
}

void StreamService::Impl::abort_and_rewind_or_throw(const kafka::KafkaError& e) {
  const bool replaceable = exactly_once && e.fatal() && producer->failed_replaceably();
  if (!replaceable && (e.fatal() || !e.abortable())) throw e;
  log::warn("service", "transaction failed; aborting and reprocessing from the last commit",
            {{"error", e.what()}});
  if (exactly_once) abort_failed_transaction();
  metrics.count_transaction(false);
  rewind();
}

void StreamService::Impl::abort_failed_transaction() {
  // An abort can fail for reasons of the outage that failed the transaction: the coordinator
  // may answer INVALID_TXN_STATE, which librdkafka 2.0 makes fatal (its issue 4849), and an
  // EndTxn that meets credentials still rejected fails as a plain authentication failure,
  // which librdkafka says to treat as fatal too. Either way the producer is replaced: its
  // successor's init_transactions waits the outage out and aborts what the coordinator
  // still holds open. Fenced by a newer instance stays fatal.
  try {
    if (!producer->failed_replaceably()) {
      producer->abort_transaction();
      transaction_open = false;
      return;
    }
  } catch (const kafka::KafkaError& e) {
    if (producer->fenced_by_newer_instance()) throw;
    log::warn("service", "aborting the transaction failed", {{"error", e.what()}});
  }
  replace_producer();
  transaction_open = false;
}

void StreamService::Impl::replace_producer() {
  // A producer that fails again before anything commits is not an outage's leftover.
  constexpr int kMaxReplacementsWithoutCommit = 3;
  if (++producer_replacements > kMaxReplacementsWithoutCommit)
    throw kafka::KafkaError("the producer failed fatally again after being replaced", true);
  log::warn("service", "the producer cannot go on, but a new one can; replacing it",
            {{"error", producer->fatal_error()},
             {"transaction_age_ms", std::to_string(producer->transaction_age().count())}});
  owners.reset();  // its thread queries the group through the producer's client
  producer->replace();
  outcome_unknown = true;
  if (queries != nullptr)
    owners = std::make_unique<GroupOwners>(producer->handle(), config.kafka.group_id,
                                           config.kafka.input_topic);
  metrics.count_producer_replacement();
}

void StreamService::Impl::rewind() {
  // State back to the last commit (the store), input back to the committed offsets.
  events_since_commit = 0;
  std::vector<int> owned;
  for (const auto& [p, task] : tasks) owned.push_back(p);
  // A failed commit often means brokers in trouble: the offsets are waited for as at an
  // assignment, never guessed (a partition whose offset could not be read, taken as "none",
  // would be processed again from its start on top of its state).
  std::map<int, std::int64_t> committed;  // negative: none
  if (!owned.empty() && !wait_for_stable_offsets(owned, committed, stop)) {
    // Shutting down: their uncommitted state must be neither used nor committed; their next
    // owner restores them.
    for (const int p : owned) drop_task(p);
    return;
  }
  if (std::exchange(outcome_unknown, false)) catch_up_stores_with_changelog(committed);
  auto seeks = kafka::make_partition_list(static_cast<int>(tasks.size()));
  for (auto& [p, task] : tasks) {
    task->committing = {};
    reload_processor(*task);
    task->committed_offset = start_offset(p, *task->store, committed.at(p));
    rd_kafka_topic_partition_list_add(seeks.get(), config.kafka.input_topic.c_str(), p)->offset =
        // Not reset_position(): a logical end, resolved now, would skip the events of the
        // failed interval; from the beginning they are processed again (at worst, with
        // auto.offset.reset latest, so are older ones).
        task->committed_offset >= 0 ? task->committed_offset : RD_KAFKA_OFFSET_BEGINNING;
  }
  if (seeks->cnt == 0) return;
  kafka::throw_if(kafka::seek(consumer.get(), seeks.get(), config.kafka.timeout_ms),
                  "seeking to committed offsets");
}

void StreamService::Impl::catch_up_stores_with_changelog(
    const std::map<int, std::int64_t>& committed) {
  // The replaced producer's init_transactions has settled its last transaction either way,
  // so reading from each store's checkpoint to the changelog's committed end applies a
  // commit the store never saw; the group's offsets let the restore check that it got there.
  for (auto it = tasks.begin(); it != tasks.end();) {
    const int p = it->first;
    try {
      const RestoreResult restored = restorer->restore(*it->second->store, p, committed.at(p));
      log::info("restore", "store caught up with the changelog after a producer replacement",
                {{"partition", std::to_string(p)}, {"records", std::to_string(restored.records)}});
      ++it;
    } catch (const RestoreInterrupted&) {
      // Shutting down: without a task its events are skipped and nothing of it is
      // committed; its next owner restores it.
      ++it;
      drop_task(p);
    }
  }
}

void StreamService::Impl::after_turn() {
  metrics.loop_turned();
  for (auto& [p, task] : tasks) publish_processor_stats(*task);
  metrics.add_event_durations(event_durations);
  if (Clock::now() - last_gauges >= gauge_refresh) refresh_partition_gauges();
  if (queries != nullptr)
    queries->serve([this](const std::string& account) { return answer_account_query(account); });
}

void StreamService::Impl::publish_processor_stats(PartitionTask& task) {
  const ProcessorStats& now = task.processor->stats();
  metrics.add_processor_delta(now, task.published);
  task.published = now;
}

void StreamService::Impl::publish_store_reads(PartitionTask& task, const StoreStats& now) {
  metrics.add_store_reads_delta(now, task.store_published);
  task.store_published = now;
}

void StreamService::Impl::drop_task(int partition) {
  // The reads are published with the gauges, every admin.gauge_refresh_ms, and the processor's
  // counts after each turn; those since would be lost with the task.
  if (const auto it = tasks.find(partition); it != tasks.end()) {
    publish_processor_stats(*it->second);
    publish_store_reads(*it->second, it->second->store->stats());
    tasks.erase(it);
  }
  metrics.remove_partition(partition);
}

void StreamService::Impl::refresh_partition_gauges() {
  last_gauges = Clock::now();
  const double now_s = static_cast<double>(wall_ms()) / 1000.0;
  std::size_t timers = 0;
  for (auto& [p, task] : tasks) {
    PartitionSeries& series = metrics.partition(p);
    const StoreStats stats = task->store->stats();
    publish_store_reads(*task, stats);
    series.state_size->Set(static_cast<double>(stats.size_bytes));
    series.state_keys->Set(static_cast<double>(stats.estimated_keys));
    if (const auto max_time = task->processor->max_event_time(); max_time != rollup::kNoTime)
      metrics.set_event_time_lag(p, now_s - static_cast<double>(max_time) / 1000.0);
    timers += task->processor->pending_timers();
  }
  metrics.set_timers_pending(static_cast<double>(timers));
}

HttpResponse StreamService::Impl::answer_account_query(const std::string& account) {
  const int partition = partition_for_key(account, input_partitions);
  auto it = tasks.find(partition);
  if (it == tasks.end()) {
    // Another instance owns it (or nobody yet, mid-rebalance): the caller retries elsewhere.
    std::string where = "\"partition\":" + std::to_string(partition) + ",\"assigned_partitions\":[";
    for (const auto& [p, task] : tasks)
      where += (where.back() == '[' ? "" : ",") + std::to_string(p);
    where += "],\"owner\":";
    if (const auto owner = owners ? owners->owner_of(partition) : std::nullopt) {
      where += "{\"member_id\":";
      append_json_string(where, owner->member_id);
      where += ",\"client_id\":";
      append_json_string(where, owner->client_id);
      where += ",\"client_host\":";
      append_json_string(where, owner->client_host);
      where += "}";
    } else {
      where += "null";  // not known yet (mid-rebalance, or not described yet)
    }
    HttpResponse r =
        json_error(503, "not_local",
                   "account '" + account.substr(0, 256) + "' is in partition " +
                       std::to_string(partition) + ", which is not assigned to this instance",
                   where);
    return r;
  }
  PartitionTask& task = *it->second;
  const rollup::AccountId id(account);
  const auto state = task.processor->find_account(id);
  if (!state)
    return json_error(404, "not_found", "no state for account '" + account.substr(0, 256) + "'");
  // As of the partition's clock: the decay an idle account has undergone is included.
  rollup::TimeMs at = state->clock;
  if (const auto watermark = task.processor->watermark(); watermark != rollup::kNoTime)
    at = std::max(at, watermark);
  HttpResponse r;
  r.content_type = "application/json";
  r.body = score_to_json(id, rollup::evaluate(model, *state, at), at, model.version());
  return r;
}

void StreamService::Impl::on_error(rd_kafka_t*, int err, const char* reason, void* opaque) {
  auto* self = static_cast<Impl*>(opaque);
  if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
    self->brokers_down = true;
    self->update_gauges();
  }
  kafka::log_client_error("consumer", err, reason);
}

int StreamService::Impl::on_statistics(rd_kafka_t*, char* json, size_t len, void* opaque) {
  auto* self = static_cast<Impl*>(opaque);
  try {
    self->read_statistics(std::string_view(json, len));
  } catch (const std::exception& e) {  // a monitoring hiccup must not stop processing
    log::warn("metrics", "could not read librdkafka statistics", {{"error", e.what()}});
  }
  return 0;  // librdkafka frees the JSON
}

namespace {
/// Whether one partition's statistics (librdkafka's STATISTICS.md) say its input may be held
/// back: no leader, no offsets known yet, or an open transaction (last stable offset below the
/// high watermark; the two are equal once every transaction in the log has ended).
bool input_held(simdjson::dom::element partition) {
  std::int64_t leader = -1, ls_offset = -1, hi_offset = -1;
  if (partition["leader"].get(leader) != simdjson::SUCCESS ||
      partition["ls_offset"].get(ls_offset) != simdjson::SUCCESS ||
      partition["hi_offset"].get(hi_offset) != simdjson::SUCCESS)
    return true;
  return leader < 0 || ls_offset < 0 || hi_offset < 0 || ls_offset < hi_offset;
}
}  // namespace

void StreamService::Impl::read_statistics(std::string_view json) {
  // A message taken from librdkafka's queue is no proof of a connection (it may have been
  // fetched before the outage): the statistics are, each interval, in both directions.
  if (const bool down = !kafka::statistics_show_a_broker_up(json); down != brokers_down) {
    brokers_down = down;
    update_gauges();
  }
  simdjson::dom::element root = statistics_parser.parse(json.data(), json.size());
  simdjson::dom::object partitions;
  if (root["topics"][config.kafka.input_topic]["partitions"].get(partitions) != simdjson::SUCCESS)
    return;
  for (auto [key, partition] : partitions) {
    int id = -1;
    std::from_chars(key.data(), key.data() + key.size(), id);
    const auto task = tasks.find(id);
    if (task == tasks.end()) continue;
    task->second->input_held = input_held(partition);
    // librdkafka's consumer_lag counts from the offsets this consumer committed itself; in
    // exactly-once mode the producer commits them (send_offsets_to_transaction), so it would
    // stay where the assignment left it. The lag is counted from the offset committed last.
    const std::int64_t committed = task->second->committed_offset;
    std::int64_t end_or_lag = -1;  // librdkafka writes -1 for what it does not know
    if (partition[committed >= 0 ? "ls_offset" : "consumer_lag"].get(end_or_lag) !=
            simdjson::SUCCESS ||
        end_or_lag < 0)
      continue;
    const std::int64_t lag =
        committed >= 0 ? std::max<std::int64_t>(0, end_or_lag - committed) : end_or_lag;
    metrics.set_consumer_lag(id, static_cast<double>(lag));
  }
}

void StreamService::Impl::run() {
  kafka::PartitionList topics = kafka::make_partition_list(1);
  rd_kafka_topic_partition_list_add(topics.get(), config.kafka.input_topic.c_str(),
                                    RD_KAFKA_PARTITION_UA);
  kafka::throw_if(rd_kafka_subscribe(consumer.get(), topics.get()), "subscribing");
  subscribed = true;
  update_gauges();
  if (queries != nullptr) queries->set_serving(true);
  const int poll_ms = std::max(1, std::min(100, config.kafka.commit_interval_ms));
  while (!stop) {
    idle_clock.polled(Clock::now());  // after the last turn's commit, which may have stalled
    take_restored();
    observe_lag();
    const auto commit_every = cadence.interval();
    // With uncommitted work, wait for input no longer than until the commit is due.
    int wait = poll_ms;
    if (events_since_commit > 0) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          last_commit_started + commit_every - Clock::now());
      wait = static_cast<int>(std::clamp<std::int64_t>(left.count(), 0, poll_ms));
    }
    // One message per poll, not rd_kafka_consume_batch_queue: librdkafka 2.0 (Debian's) can
    // skip offsets of partitions a consumer keeps when a rebalance lands inside a batch call
    // (a known issue of its batch API, fixed in 2.1); the integration test of scaling caught it.
    for (std::size_t taken = 0; taken < config.kafka.max_batch_events; wait = 0, ++taken) {
      // Owned at once: a message still alive would make destroying the consumer block.
      kafka::Message message(rd_kafka_consumer_poll(consumer.get(), wait));
      rethrow_callback_error();
      if (message == nullptr) break;
      // The clock is read once per 64 messages, not per message: often enough that a backlog
      // does not push the commit past its deadline.
      bool commit_is_due = false;
      if (taken % 64 == 0) {
        turn_started = Clock::now();
        if (const auto jump_days = config.model.decoder.max_clock_jump_days; jump_days > 0)
          time_ceiling = wall_ms() + jump_days * rollup::kMsPerDay;
        commit_is_due = taken > 0 && turn_started - last_commit_started >= commit_every;
      }
      if (!handle_or_rewind(std::move(message)) || commit_is_due) break;
    }
    if (rd_kafka_fatal_error(consumer.get(), nullptr, 0) != RD_KAFKA_RESP_ERR_NO_ERROR)
      throw kafka::KafkaError("consumer fatal error", true);
    try {
      advance_idle_partitions();
    } catch (const kafka::KafkaError& e) {
      abort_and_rewind_or_throw(e);  // a timer's signal refused: as a refused event's
    }
    producer->poll();
    if (commit_due()) commit_or_rewind();
    after_turn();
  }
  if (queries != nullptr) queries->set_serving(false);
  log::info("service", "stopping: committing and leaving the group");
  // Before the consumer closes: a restore may be asking the group for its committed offset,
  // which a closing consumer no longer answers (the call would wait out kafka.timeout_ms).
  auto cancelled = restores->cancel_all();
  for (const auto& [p, restored] : unstarted) cancelled.push_back({p, false});
  unstarted.clear();
  give_up_restores(cancelled, "shutting down");
  if (events_since_commit > 0) commit_or_rewind();
  if (transaction_open) {
    producer->abort_transaction();  // an empty transaction
    transaction_open = false;
  }
  kafka::throw_if(rd_kafka_consumer_close(consumer.get()), "closing the consumer");
  rethrow_callback_error();
  after_turn();
  while (!tasks.empty()) drop_task(tasks.begin()->first);
  if (!exactly_once) producer->flush_all();
  log::info("service", "stopped");
}

StreamService::StreamService(const ServiceConfig& config, const std::atomic<bool>& stop,
                             ServiceMetrics& metrics, AccountQueries* queries)
    : impl_(std::make_unique<Impl>(config, stop, metrics, queries)) {}

StreamService::~StreamService() = default;

void StreamService::run() {
  impl_->run();
}

}  // namespace pqa::scorer
