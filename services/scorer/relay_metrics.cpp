#include "relay_metrics.h"

#include <prometheus/text_serializer.h>

#include <chrono>

#include "metrics.h"

namespace pqa::scorer {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

std::int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

/// 1 ms to ~2 h in steps of 2: the fast lane's seconds and the retries' hours.
prometheus::Histogram::BucketBoundaries latency_bounds() {
  prometheus::Histogram::BucketBoundaries b;
  for (double v = 0.001; v < 8000; v *= 2) b.push_back(v);
  return b;
}

constexpr std::array<relay::AttemptClass, 6> kClasses = {
    relay::AttemptClass::kSuccess,   relay::AttemptClass::kPermanent,
    relay::AttemptClass::kGone,      relay::AttemptClass::kSlowDown,
    relay::AttemptClass::kRetryable, relay::AttemptClass::kTransportError};
constexpr std::array<const char*, 3> kFinishes = {"delivered", "dead_lettered", "superseded"};

}  // namespace

RelayMetrics::RelayMetrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      process_collector_(make_process_collector()) {
  auto& r = *registry_;
  consumed_ = &BuildCounter()
                   .Name("pqa_relay_signals_consumed_total")
                   .Help("Records read from the signals topic")
                   .Register(r)
                   .Add({});
  invalid_ = &BuildCounter()
                  .Name("pqa_relay_signals_invalid_total")
                  .Help("Records of the signals topic that are not signals (dead-lettered)")
                  .Register(r)
                  .Add({});
  dead_letters_ = &BuildCounter()
                       .Name("pqa_relay_dead_letters_total")
                       .Help("Records written to the relay's dead-letter topic")
                       .Register(r)
                       .Add({});
  pending_ = &BuildGauge()
                  .Name("pqa_relay_pending_signals")
                  .Help("Signals read and not yet delivered or dead-lettered everywhere")
                  .Register(r)
                  .Add({});
  paused_ = &BuildGauge()
                 .Name("pqa_relay_consumer_paused")
                 .Help("1 while consumption is paused (max_pending_signals reached)")
                 .Register(r)
                 .Add({});
  assigned_ = &BuildGauge()
                   .Name("pqa_relay_assigned_partitions")
                   .Help("Signals-topic partitions assigned to this instance")
                   .Register(r)
                   .Add({});
  ready_ =
      &BuildGauge().Name("pqa_relay_ready").Help("1 when /readyz answers 200").Register(r).Add({});
  last_turn_ms_.store(steady_ms(), std::memory_order_relaxed);
}

RelayEndpointSeries& RelayMetrics::endpoint(const std::string& name) {
  auto [it, inserted] = endpoints_.try_emplace(name);
  if (!inserted) return it->second;
  RelayEndpointSeries& s = it->second;
  auto& r = *registry_;
  auto& attempts = BuildCounter()
                       .Name("pqa_relay_delivery_attempts_total")
                       .Help(
                           "HTTP requests to an endpoint by outcome (success, rejected, gone, "
                           "slow_down, retryable_error, transport_error)")
                       .Register(r);
  for (std::size_t i = 0; i < kClasses.size(); ++i)
    s.attempts[i] = &attempts.Add({{"endpoint", name}, {"outcome", to_string(kClasses[i])}});
  auto& finished = BuildCounter()
                       .Name("pqa_relay_signals_finished_total")
                       .Help("Signals whose delivery to an endpoint is over, by outcome")
                       .Register(r);
  for (std::size_t i = 0; i < kFinishes.size(); ++i)
    s.finished[i] = &finished.Add({{"endpoint", name}, {"outcome", kFinishes[i]}});
  s.retries = &BuildCounter()
                   .Name("pqa_relay_retries_total")
                   .Help("Requests that repeat an earlier failed one")
                   .Register(r)
                   .Add({{"endpoint", name}});
  s.signal_to_2xx = &BuildHistogram()
                         .Name("pqa_relay_signal_to_2xx_seconds")
                         .Help("From the signal's record timestamp to the endpoint's 2xx")
                         .Register(r)
                         .Add({{"endpoint", name}}, latency_bounds());
  s.request_duration = &BuildHistogram()
                            .Name("pqa_relay_request_duration_seconds")
                            .Help("One HTTP request, connect to response, any outcome")
                            .Register(r)
                            .Add({{"endpoint", name}}, latency_bounds());
  auto gauge = [&](const char* metric, const char* help) {
    return &BuildGauge().Name(metric).Help(help).Register(r).Add({{"endpoint", name}});
  };
  s.breaker_state =
      gauge("pqa_relay_breaker_state", "Circuit breaker: 0 closed, 1 half-open, 2 open");
  s.queued_signals =
      gauge("pqa_relay_queue_depth", "Signals queued for the endpoint, in flight included");
  s.in_flight = gauge("pqa_relay_in_flight_requests", "Requests awaiting a response");
  s.disabled = gauge("pqa_relay_endpoint_disabled", "1 after the endpoint answered 410 Gone");
  s.slow_down_factor = gauge("pqa_relay_slow_down_factor",
                             "Allowed share of the configured concurrency and rate (1: full)");
  return s;
}

void RelayMetrics::loop_turned() {
  last_turn_ms_.store(steady_ms(), std::memory_order_relaxed);
}

bool RelayMetrics::ready() const {
  return ready_flag_ && steady_ms() - last_turn_ms_.load(std::memory_order_relaxed) < 5'000;
}

std::string RelayMetrics::exposition() const {
  ready_->Set(ready() ? 1 : 0);
  auto families = registry_->Collect();
  for (auto& f : process_collector_->Collect()) families.push_back(std::move(f));
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace pqa::scorer
