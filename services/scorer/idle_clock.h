// When an input partition counts as idle, for the service's wall-clock advance
// (service.idle_advance_ms): silent accounts must decay in production, but only silence the
// loop has actually watched counts as silence.
#pragma once

#include <algorithm>
#include <chrono>

namespace pqa::scorer {

/// A partition is idle once no event of it has been processed for `idle` while the loop was
/// polling. A stretch in which the loop did not poll for longer than `stall` (a restore inside
/// a rebalance callback, a commit retried through a broker outage) restarts every partition's
/// idle time: the input that arrived meanwhile waits in the consumer's queue, unseen, and
/// advancing the clock before it would fire timers ahead of events that were on time.
/// Pure: the service passes the times in.
class IdleClock {
 public:
  using Clock = std::chrono::steady_clock;

  IdleClock(Clock::duration idle, Clock::duration stall, Clock::time_point now)
      : idle_(idle), stall_(stall), last_poll_(now), watched_since_(now) {}

  /// Called whenever the loop is about to poll or has just polled.
  void polled(Clock::time_point now) {
    if (now - last_poll_ > stall_) watched_since_ = now;
    last_poll_ = std::max(last_poll_, now);
  }

  /// Whether a partition whose last event was processed at `last_event` is idle at `now`.
  bool idle(Clock::time_point last_event, Clock::time_point now) const {
    return now - std::max(last_event, watched_since_) >= idle_;
  }

 private:
  Clock::duration idle_;
  Clock::duration stall_;
  Clock::time_point last_poll_;
  Clock::time_point watched_since_;  ///< the end of the last stall: silence counts from here
};

}  // namespace pqa::scorer
