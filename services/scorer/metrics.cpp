#include "metrics.h"

#include <prometheus/collectable.h>
#include <prometheus/text_serializer.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <utility>
#include <vector>

#include "processor.h"
#include "state_store.h"

namespace pqa::scorer {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

/// The standard process_* series (what client_golang and client_java export), from /proc.
class ProcessCollector final : public prometheus::Collectable {
 public:
  std::vector<prometheus::MetricFamily> Collect() const override {
    std::vector<prometheus::MetricFamily> out;
    const auto stat = read_stat();
    if (!stat) return out;
    const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
    const double page = static_cast<double>(::sysconf(_SC_PAGESIZE));
    add(out, "process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
        prometheus::MetricType::Counter, (stat->utime + stat->stime) / ticks);
    add(out, "process_resident_memory_bytes", "Resident memory size in bytes.",
        prometheus::MetricType::Gauge, stat->rss_pages * page);
    add(out, "process_virtual_memory_bytes", "Virtual memory size in bytes.",
        prometheus::MetricType::Gauge, stat->vsize);
    if (const double boot = boot_time(); boot > 0)
      add(out, "process_start_time_seconds",
          "Start time of the process since unix epoch in seconds.", prometheus::MetricType::Gauge,
          boot + stat->start_ticks / ticks);
    add(out, "process_open_fds", "Number of open file descriptors.", prometheus::MetricType::Gauge,
        open_fds());
    return out;
  }

 private:
  struct Stat {
    double utime = 0, stime = 0, start_ticks = 0, vsize = 0, rss_pages = 0;
  };

  static std::optional<Stat> read_stat() {
    std::ifstream in("/proc/self/stat");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // The command name (field 2) may hold spaces; fields are counted after its ')'.
    const auto close = text.rfind(')');
    if (close == std::string::npos) return std::nullopt;
    std::istringstream fields(text.substr(close + 2));
    std::vector<std::string> f((std::istream_iterator<std::string>(fields)),
                               std::istream_iterator<std::string>());
    // f[0] is field 3 (state): field n is f[n - 3].
    if (f.size() < 22) return std::nullopt;
    Stat s;
    s.utime = std::stod(f[14 - 3]);
    s.stime = std::stod(f[15 - 3]);
    s.start_ticks = std::stod(f[22 - 3]);
    s.vsize = std::stod(f[23 - 3]);
    s.rss_pages = std::stod(f[24 - 3]);
    return s;
  }

  static double boot_time() {
    std::ifstream in("/proc/stat");
    std::string key;
    double value = 0;
    while (in >> key) {
      if (key == "btime" && in >> value) return value;
      in.ignore(1 << 20, '\n');
    }
    return 0;
  }

  static double open_fds() {
    std::error_code ec;
    double n = 0;
    for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end;
         it.increment(ec))
      ++n;
    return n;
  }

  static void add(std::vector<prometheus::MetricFamily>& out, const char* name, const char* help,
                  prometheus::MetricType type, double value) {
    prometheus::ClientMetric m;
    if (type == prometheus::MetricType::Counter)
      m.counter.value = value;
    else
      m.gauge.value = value;
    out.push_back({name, help, type, {m}});
  }
};

/// Exponential buckets: `count` bounds from `start`, each `factor` times the previous.
prometheus::Histogram::BucketBoundaries exponential(double start, double factor, int count) {
  prometheus::Histogram::BucketBoundaries b;
  for (double v = start; count-- > 0; v *= factor) b.push_back(v);
  return b;
}

constexpr std::array<const char*, 3> kCallTypes = {"track", "identify", "group"};

}  // namespace

std::shared_ptr<prometheus::Collectable> make_process_collector() {
  return std::make_shared<ProcessCollector>();
}

ServiceMetrics::ServiceMetrics(std::string_view model_version, std::string_view processing)
    : registry_(std::make_shared<prometheus::Registry>()),
      process_collector_(std::make_shared<ProcessCollector>()) {
  auto& r = *registry_;
  BuildGauge()
      .Name("pqa_build_info")
      .Help("Constant 1, labelled with the scoring model's version and the processing mode")
      .Register(r)
      .Add({{"model_version", std::string(model_version)}, {"processing", std::string(processing)}})
      .Set(1);

  events_family_ = &BuildCounter()
                        .Name("pqa_events_consumed_total")
                        .Help(
                            "Input events taken by this instance, by Segment call type and "
                            "outcome (processed, ignored: page/screen/alias, rejected)")
                        .Register(r);
  for (std::size_t t = 0; t < kCallTypes.size(); ++t)
    processed_by_type_[t] =
        &events_family_->Add({{"type", kCallTypes[t]}, {"outcome", "processed"}});
  ignored_ = &events_family_->Add({{"type", "other"}, {"outcome", "ignored"}});
  rejected_ = &events_family_->Add({{"type", "unknown"}, {"outcome", "rejected"}});

  auto& decode = BuildCounter()
                     .Name("pqa_decode_errors_total")
                     .Help(
                         "Rejected input events by reason (the pqa.error.reason header of "
                         "their dead letter)")
                     .Register(r);
  for (std::size_t i = 0; i < rollup::kDecodeErrorCount; ++i)
    decode_errors_[i] = &decode.Add(
        {{"reason", std::string(rollup::to_string(static_cast<rollup::DecodeError>(i)))}});

  dead_letters_ = &BuildCounter()
                       .Name("pqa_dead_letter_events_total")
                       .Help("Input events written to the dead-letter topic")
                       .Register(r)
                       .Add({});
  event_duration_ =
      &BuildHistogram()
           .Name("pqa_event_processing_duration_seconds")
           .Help("Time to decode, score and emit one input event (one event in 32 is timed)")
           .Register(r)
           .Add({}, event_duration_bounds());

  auto& signals = BuildCounter()
                      .Name("pqa_signals_emitted_total")
                      .Help("Signals produced to the signals topic, by kind")
                      .Register(r);
  for (std::size_t k = 0; k < signals_.size(); ++k)
    signals_[k] = &signals.Add(
        {{"kind", std::string(rollup::to_string(static_cast<rollup::SignalKind>(k)))}});

  timers_fired_ = &BuildCounter()
                       .Name("pqa_timers_fired_total")
                       .Help("Account timers (decay, active-window expiry) that fired")
                       .Register(r)
                       .Add({});
  auto& state_reads = BuildCounter()
                          .Name("pqa_state_reads_total")
                          .Help(
                              "Reads of the RocksDB state (cache misses, restore and metadata "
                              "reads, account queries), by who answered: the new-key filter (a "
                              "key never written) or the store")
                          .Register(r);
  reads_from_store_ = &state_reads.Add({{"answered_by", "store"}});
  reads_filtered_ = &state_reads.Add({{"answered_by", "new_key_filter"}});
  timers_pending_ = &BuildGauge()
                         .Name("pqa_timers_pending")
                         .Help("Accounts with a pending timer on this instance")
                         .Register(r)
                         .Add({});

  auto& txns = BuildCounter()
                   .Name("pqa_transactions_total")
                   .Help(
                       "Commits of outputs and input offsets: Kafka transactions in "
                       "exactly-once mode, offset commits in at-least-once mode")
                   .Register(r);
  txn_committed_ = &txns.Add({{"outcome", "committed"}});
  txn_aborted_ = &txns.Add({{"outcome", "aborted"}});
  producer_replacements_ = &BuildCounter()
                                .Name("pqa_producer_replacements_total")
                                .Help(
                                    "Transactional producers replaced after a fatal error other "
                                    "than fencing (e.g. an abort refused after an outage)")
                                .Register(r)
                                .Add({});
  commit_duration_ = &BuildHistogram()
                          .Name("pqa_commit_duration_seconds")
                          .Help(
                              "Time to commit one interval (transaction or offsets, then the "
                              "local store)")
                          .Register(r)
                          .Add({}, exponential(0.001, 2, 14));  // 1 ms .. 8 s
  commit_interval_ = &BuildGauge()
                          .Name("pqa_commit_interval_seconds")
                          .Help(
                              "Commit interval in use: kafka.commit_interval_ms, or "
                              "kafka.catch_up.commit_interval_ms while the input is far behind")
                          .Register(r)
                          .Add({});
  rebalances_family_ = &BuildCounter()
                            .Name("pqa_rebalances_total")
                            .Help("Consumer-group rebalance callbacks, by kind")
                            .Register(r);
  for (const char* kind : {"assigned", "revoked", "lost"})
    rebalances_family_->Add({{"kind", kind}});
  assigned_partitions_ = &BuildGauge()
                              .Name("pqa_assigned_partitions")
                              .Help("Input partitions assigned to this instance")
                              .Register(r)
                              .Add({});

  restored_records_ = &BuildCounter()
                           .Name("pqa_restore_records_total")
                           .Help("Changelog records applied to local state while restoring")
                           .Register(r)
                           .Add({});
  restoring_partitions_ = &BuildGauge()
                               .Name("pqa_restoring_partitions")
                               .Help("Partitions being restored from the changelog")
                               .Register(r)
                               .Add({});
  restore_remaining_family_ = &BuildGauge()
                                   .Name("pqa_restore_remaining_records")
                                   .Help("Changelog records a partition still has to restore")
                                   .Register(r);

  consumer_lag_family_ = &BuildGauge()
                              .Name("pqa_consumer_lag_records")
                              .Help(
                                  "Records between the committed position and the end of an "
                                  "input partition (librdkafka statistics)")
                              .Register(r);
  event_time_lag_family_ = &BuildGauge()
                                .Name("pqa_event_time_lag_seconds")
                                .Help("Wall clock minus the largest event time of a partition")
                                .Register(r);
  state_size_family_ = &BuildGauge()
                            .Name("pqa_state_size_bytes")
                            .Help("Size of a partition's RocksDB state (SST files and memtables)")
                            .Register(r);
  state_keys_family_ = &BuildGauge()
                            .Name("pqa_state_keys")
                            .Help("Estimated number of keys in a partition's RocksDB state")
                            .Register(r);

  ready_ = &BuildGauge()
                .Name("pqa_ready")
                .Help(
                    "1 when every assigned partition is restored and the consumer is "
                    "connected (what /readyz answers)")
                .Register(r)
                .Add({});
  http_family_ = &BuildCounter()
                      .Name("pqa_http_requests_total")
                      .Help("Admin HTTP requests, by route and status code")
                      .Register(r);
}

HistogramBatch::HistogramBatch(prometheus::Histogram::BucketBoundaries bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0.0) {}

void HistogramBatch::observe(double value) {
  std::size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;  // le: bucket i holds value <= bound
  counts_[i] += 1;
  sum_ += value;
  empty_ = false;
}

void HistogramBatch::flush_to(prometheus::Histogram& histogram) {
  if (empty_) return;
  histogram.ObserveMultiple(counts_, sum_);
  std::fill(counts_.begin(), counts_.end(), 0.0);
  sum_ = 0;
  empty_ = true;
}

prometheus::Histogram::BucketBoundaries ServiceMetrics::event_duration_bounds() {
  return exponential(1e-6, 4, 10);  // 1 us .. 262 ms
}

namespace {
std::int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

void ServiceMetrics::loop_turned() {
  last_turn_ms_.store(steady_ms(), std::memory_order_relaxed);
}

bool ServiceMetrics::ready() const {
  if (!ready_flag_) return false;
  const auto last = last_turn_ms_.load(std::memory_order_relaxed);
  return last == 0 || steady_ms() - last < std::chrono::milliseconds(kMaxLoopStall).count();
}

std::string ServiceMetrics::exposition() const {
  ready_->Set(ready() ? 1 : 0);
  auto families = registry_->Collect();
  for (auto& f : process_collector_->Collect()) families.push_back(std::move(f));
  return prometheus::TextSerializer().Serialize(families);
}

void ServiceMetrics::add_processor_delta(const ProcessorStats& now, const ProcessorStats& prev) {
  const auto add = [](prometheus::Counter* c, std::uint64_t a, std::uint64_t b) {
    if (a > b) c->Increment(static_cast<double>(a - b));
  };
  for (std::size_t t = 0; t < processed_by_type_.size(); ++t)
    add(processed_by_type_[t], now.processed_by_type[t], prev.processed_by_type[t]);
  add(ignored_, now.ignored, prev.ignored);
  add(rejected_, now.rejected, prev.rejected);
  for (std::size_t i = 0; i < decode_errors_.size(); ++i)
    add(decode_errors_[i], now.rejected_by_reason[i], prev.rejected_by_reason[i]);
  add(timers_fired_, now.timers_fired, prev.timers_fired);
}

void ServiceMetrics::add_store_reads_delta(const StoreStats& now, const StoreStats& prev) {
  const std::uint64_t filtered = now.reads_filtered - prev.reads_filtered;
  reads_filtered_->Increment(static_cast<double>(filtered));
  reads_from_store_->Increment(static_cast<double>(now.reads - prev.reads - filtered));
}

std::uint64_t ServiceMetrics::events_consumed() const {
  double sum = ignored_->Value() + rejected_->Value();
  for (const auto* c : processed_by_type_) sum += c->Value();
  return static_cast<std::uint64_t>(sum);
}

std::uint64_t ServiceMetrics::events_rejected() const {
  return static_cast<std::uint64_t>(rejected_->Value());
}

void ServiceMetrics::count_rebalance(Rebalance kind) {
  static constexpr std::array<const char*, 3> kNames = {"assigned", "revoked", "lost"};
  rebalances_family_->Add({{"kind", kNames[static_cast<std::size_t>(kind)]}}).Increment();
}

PartitionSeries& ServiceMetrics::partition(int partition) {
  auto [it, inserted] = partitions_.try_emplace(partition);
  if (inserted) {
    const prometheus::Labels labels = {{"partition", std::to_string(partition)}};
    it->second.state_size = &state_size_family_->Add(labels);
    it->second.state_keys = &state_keys_family_->Add(labels);
    it->second.restore_remaining = &restore_remaining_family_->Add(labels);
  }
  return it->second;
}

void ServiceMetrics::remove_partition(int partition) {
  auto it = partitions_.find(partition);
  if (it == partitions_.end()) return;
  if (it->second.consumer_lag != nullptr) consumer_lag_family_->Remove(it->second.consumer_lag);
  if (it->second.event_time_lag != nullptr)
    event_time_lag_family_->Remove(it->second.event_time_lag);
  state_size_family_->Remove(it->second.state_size);
  state_keys_family_->Remove(it->second.state_keys);
  restore_remaining_family_->Remove(it->second.restore_remaining);
  partitions_.erase(it);
}

namespace {
/// A partition's lag series, added with its first value.
void set_lazily(prometheus::Family<prometheus::Gauge>& family, prometheus::Gauge*& gauge,
                int partition, double value) {
  if (gauge == nullptr) gauge = &family.Add({{"partition", std::to_string(partition)}});
  gauge->Set(value);
}
}  // namespace

void ServiceMetrics::set_consumer_lag(int partition, double lag) {
  if (auto it = partitions_.find(partition); it != partitions_.end())
    set_lazily(*consumer_lag_family_, it->second.consumer_lag, partition, lag);
}

void ServiceMetrics::set_event_time_lag(int partition, double seconds) {
  if (auto it = partitions_.find(partition); it != partitions_.end())
    set_lazily(*event_time_lag_family_, it->second.event_time_lag, partition, seconds);
}

void ServiceMetrics::count_http_request(std::string_view route, int status) {
  http_family_->Add({{"route", std::string(route)}, {"code", std::to_string(status)}}).Increment();
}

}  // namespace pqa::scorer
