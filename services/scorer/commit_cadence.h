// How often the streaming service commits: the configured interval, or a longer one while the
// input is far behind (a restart after downtime, a burst, a scale-in).
#pragma once

#include <chrono>
#include <cstdint>

namespace pqa::scorer {

/// The `kafka.catch_up` section.
struct CatchUpOptions {
  /// Behind by at least this many events (over the assigned partitions): catching up. 0: off;
  /// otherwise at least kMinLagEvents (a smaller lag is not a backlog).
  std::int64_t lag_events = 50'000;
  static constexpr std::int64_t kMinLagEvents = 1'000;
  int commit_interval_ms = 1'000;  ///< the interval while catching up
};

/// A transaction costs about the same whatever it holds (its round trips, the broker's
/// markers), and its changelog and scores records coalesce every change of a key within it:
/// fewer, larger transactions process a backlog faster (bench/RESULTS.md §5j). When the
/// input is not behind, a signal's latency is what matters, and the short interval applies.
/// Leaving takes the lag below half the threshold, so a lag hovering at it does not flip the
/// interval at every turn. Pure: the service measures the lag and reads the interval.
class CommitCadence {
 public:
  CommitCadence(int commit_interval_ms, CatchUpOptions catch_up)
      : normal_(commit_interval_ms), catch_up_(catch_up) {}

  enum class Change { kNone, kEntered, kLeft };
  /// `lag`: events between the assigned partitions' positions and their high watermarks.
  Change observe_lag(std::int64_t lag) {
    if (catch_up_.lag_events <= 0) return Change::kNone;
    if (!catching_up_ && lag >= catch_up_.lag_events) {
      catching_up_ = true;
      return Change::kEntered;
    }
    if (catching_up_ && 2 * lag < catch_up_.lag_events) {
      catching_up_ = false;
      return Change::kLeft;
    }
    return Change::kNone;
  }

  bool catching_up() const { return catching_up_; }
  std::chrono::milliseconds interval() const {
    return std::chrono::milliseconds(catching_up_ ? catch_up_.commit_interval_ms : normal_);
  }

 private:
  int normal_;
  CatchUpOptions catch_up_;
  bool catching_up_ = false;
};

}  // namespace pqa::scorer
