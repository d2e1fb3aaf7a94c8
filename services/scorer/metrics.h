// The service's Prometheus metrics (prometheus-cpp's registry and text format; served by the
// admin server). Names follow Prometheus' conventions: a `pqa_` prefix, base units in the
// name (`_seconds`, `_bytes`), `_total` on counters. docs/operations.md lists every series.
//
// Threading: counters, gauges and histograms are atomic, so the processing loop updates them
// and the admin server's thread reads them without a lock. Partition-labelled series are
// added and removed by the processing loop only (assignment, revocation).
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "pqa/rollup/event.h"
#include "pqa/rollup/scoring.h"

namespace pqa::scorer {

struct ProcessorStats;
struct StoreStats;

/// The standard process_* series (CPU, memory, file descriptors, start time) from /proc.
std::shared_ptr<prometheus::Collectable> make_process_collector();

/// Observations gathered locally and added to a histogram in one call: the histogram takes a
/// lock per call, which per event would be a measurable share of the event's cost.
class HistogramBatch {
 public:
  explicit HistogramBatch(prometheus::Histogram::BucketBoundaries bounds);
  void observe(double value);
  /// Adds what was observed to `histogram` (created with the same bounds) and starts over.
  void flush_to(prometheus::Histogram& histogram);

 private:
  prometheus::Histogram::BucketBoundaries bounds_;
  std::vector<double> counts_;  ///< one per bound, then +Inf
  double sum_ = 0;
  bool empty_ = true;
};

/// Series that exist once per assigned input partition.
/// The two lag series appear with their first value (set_consumer_lag, set_event_time_lag):
/// a partition still restoring has no lag figure yet, and a 0 would read as "caught up".
struct PartitionSeries {
  prometheus::Gauge* consumer_lag = nullptr;       ///< from librdkafka's statistics
  prometheus::Gauge* event_time_lag = nullptr;     ///< wall clock - partition's max event time
  prometheus::Gauge* state_size = nullptr;         ///< RocksDB SST files + memtables
  prometheus::Gauge* state_keys = nullptr;         ///< RocksDB's estimate
  prometheus::Gauge* restore_remaining = nullptr;  ///< changelog records left to restore
};

class ServiceMetrics {
 public:
  /// `model_version` and `processing` ("exactly_once", "at_least_once") label the info series.
  ServiceMetrics(std::string_view model_version, std::string_view processing);
  ServiceMetrics(const ServiceMetrics&) = delete;
  ServiceMetrics& operator=(const ServiceMetrics&) = delete;

  /// Every series in Prometheus' text exposition format (version 0.0.4).
  std::string exposition() const;

  // --- Events -------------------------------------------------------------------------
  /// Adds what a processor counted since `previous` (its stats at the last call).
  void add_processor_delta(const ProcessorStats& now, const ProcessorStats& previous);
  /// Bounds of pqa_event_processing_duration_seconds, for a HistogramBatch.
  static prometheus::Histogram::BucketBoundaries event_duration_bounds();
  void add_event_durations(HistogramBatch& batch) { batch.flush_to(*event_duration_); }
  void count_dead_letter() { dead_letters_->Increment(); }
  void count_signal(rollup::SignalKind kind) {
    signals_[static_cast<std::size_t>(kind)]->Increment();
  }
  /// Events taken from the input, whatever their outcome (processed, ignored, rejected).
  std::uint64_t events_consumed() const;
  std::uint64_t events_rejected() const;

  // --- Commits and group membership -------------------------------------------------------
  void count_transaction(bool committed) {
    (committed ? txn_committed_ : txn_aborted_)->Increment();
  }
  void observe_commit_duration(double seconds) { commit_duration_->Observe(seconds); }
  void count_producer_replacement() { producer_replacements_->Increment(); }
  enum class Rebalance { kAssigned, kRevoked, kLost };
  void count_rebalance(Rebalance kind);
  void set_assigned_partitions(int n) { assigned_partitions_->Set(n); }
  void set_commit_interval(std::chrono::milliseconds interval) {
    commit_interval_->Set(std::chrono::duration<double>(interval).count());
  }
  void set_timers_pending(double n) { timers_pending_->Set(n); }
  /// Adds the state reads a store counted since `previous` (its stats at the last call).
  void add_store_reads_delta(const StoreStats& now, const StoreStats& previous);

  // --- Restore --------------------------------------------------------------------------
  void add_restored_records(std::uint64_t n) { restored_records_->Increment(double(n)); }
  void set_restoring_partitions(int n) { restoring_partitions_->Set(n); }

  // --- Per partition ----------------------------------------------------------------------
  PartitionSeries& partition(int partition);  ///< creates the series on first use
  void remove_partition(int partition);
  /// The lags of a partition this instance may no longer own are ignored.
  void set_consumer_lag(int partition, double lag);
  void set_event_time_lag(int partition, double seconds);

  // --- Readiness --------------------------------------------------------------------------
  /// What the service knows: partitions restored, subscribed, brokers reachable.
  void set_ready(bool ready) { ready_flag_ = ready; }
  /// The processing loop completed a turn. A loop stuck for kMaxLoopStall (a commit retried
  /// through a broker outage, a long restore) is not ready, whatever the flag says.
  void loop_turned();
  bool ready() const;
  static constexpr std::chrono::seconds kMaxLoopStall{5};

  // --- Admin server ----------------------------------------------------------------------
  /// `route` is one of a fixed set (healthz, readyz, metrics, accounts, other).
  void count_http_request(std::string_view route, int status);

  prometheus::Registry& registry() { return *registry_; }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<prometheus::Collectable> process_collector_;

  prometheus::Family<prometheus::Counter>* events_family_;
  // [call type][outcome]: track/identify/group/ignored x processed/ignored/rejected
  std::array<prometheus::Counter*, 3> processed_by_type_{};
  prometheus::Counter* ignored_ = nullptr;
  prometheus::Counter* rejected_ = nullptr;
  std::array<prometheus::Counter*, rollup::kDecodeErrorCount> decode_errors_{};
  prometheus::Counter* dead_letters_ = nullptr;
  prometheus::Histogram* event_duration_ = nullptr;
  std::array<prometheus::Counter*, rollup::kSignalKindCount> signals_{};
  prometheus::Counter* timers_fired_ = nullptr;
  prometheus::Gauge* timers_pending_ = nullptr;
  prometheus::Counter* reads_from_store_ = nullptr;
  prometheus::Counter* reads_filtered_ = nullptr;

  prometheus::Counter* txn_committed_ = nullptr;
  prometheus::Counter* txn_aborted_ = nullptr;
  prometheus::Counter* producer_replacements_ = nullptr;
  prometheus::Histogram* commit_duration_ = nullptr;
  prometheus::Family<prometheus::Counter>* rebalances_family_;
  prometheus::Gauge* assigned_partitions_ = nullptr;
  prometheus::Gauge* commit_interval_ = nullptr;

  prometheus::Counter* restored_records_ = nullptr;
  prometheus::Gauge* restoring_partitions_ = nullptr;

  prometheus::Family<prometheus::Gauge>* consumer_lag_family_;
  prometheus::Family<prometheus::Gauge>* event_time_lag_family_;
  prometheus::Family<prometheus::Gauge>* state_size_family_;
  prometheus::Family<prometheus::Gauge>* state_keys_family_;
  prometheus::Family<prometheus::Gauge>* restore_remaining_family_;
  std::map<int, PartitionSeries> partitions_;

  prometheus::Gauge* ready_ = nullptr;
  std::atomic<bool> ready_flag_{false};
  std::atomic<std::int64_t> last_turn_ms_{0};  ///< steady clock; 0: no turn yet

  prometheus::Family<prometheus::Counter>* http_family_;
};

}  // namespace pqa::scorer
