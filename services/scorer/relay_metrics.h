// The relay's Prometheus metrics, on the same conventions as the scorer's (metrics.h): a
// `pqa_relay_` prefix, base units, `_total` counters, an `endpoint` label per configured
// endpoint. docs/relay.md lists every series. Updated by the relay's loop thread only; read
// by the admin server's thread (prometheus-cpp's metrics are atomic).
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <atomic>
#include <map>
#include <memory>
#include <string>

#include "relay_dispatch.h"

namespace pqa::scorer {

struct RelayEndpointSeries {
  std::array<prometheus::Counter*, 6> attempts{};  ///< by relay::AttemptClass
  std::array<prometheus::Counter*, 3> finished{};  ///< by relay::Finish
  prometheus::Counter* retries = nullptr;
  prometheus::Histogram* signal_to_2xx = nullptr;  ///< signal's record timestamp to 2xx
  prometheus::Histogram* request_duration = nullptr;
  prometheus::Gauge* breaker_state = nullptr;  ///< 0 closed, 1 half-open, 2 open
  prometheus::Gauge* queued_signals = nullptr;
  prometheus::Gauge* in_flight = nullptr;
  prometheus::Gauge* disabled = nullptr;
  prometheus::Gauge* slow_down_factor = nullptr;
};

class RelayMetrics {
 public:
  RelayMetrics();
  RelayMetrics(const RelayMetrics&) = delete;
  RelayMetrics& operator=(const RelayMetrics&) = delete;

  RelayEndpointSeries& endpoint(const std::string& name);  ///< created on first use

  prometheus::Counter& consumed() { return *consumed_; }
  prometheus::Counter& invalid() { return *invalid_; }
  prometheus::Counter& dead_letters() { return *dead_letters_; }
  prometheus::Gauge& pending_signals() { return *pending_; }
  prometheus::Gauge& consumer_paused() { return *paused_; }
  prometheus::Gauge& assigned_partitions() { return *assigned_; }

  void set_ready(bool ready) { ready_flag_ = ready; }
  /// Called by every turn of the loop; a loop stalled for 5 s is not ready.
  void loop_turned();
  bool ready() const;

  std::string exposition() const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<prometheus::Collectable> process_collector_;
  prometheus::Counter* consumed_;
  prometheus::Counter* invalid_;
  prometheus::Counter* dead_letters_;
  prometheus::Gauge* pending_;
  prometheus::Gauge* paused_;
  prometheus::Gauge* assigned_;
  prometheus::Gauge* ready_;
  std::map<std::string, RelayEndpointSeries> endpoints_;
  std::atomic<bool> ready_flag_{false};
  std::atomic<std::int64_t> last_turn_ms_{0};
};

}  // namespace pqa::scorer
