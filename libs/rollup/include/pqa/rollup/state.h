// Incremental per-account and per-user state. Plain values: the service persists them
// (proto/pqa/v1/state.proto) and the core updates them in place.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "pqa/rollup/decay.h"
#include "pqa/rollup/event.h"
#include "pqa/rollup/types.h"

namespace pqa::rollup {

/// Fixed-point amount in units of 1e-9. Activity sums are kept in integers so that adding and
/// taking back a user's contribution is exact: every path to the same state (incremental
/// updates, a reload from the store, a rebuild) gives bit-identical sums.
using Fixed = std::int64_t;
inline constexpr double kFixedScale = 1e9;
inline Fixed to_fixed(double v) {
  return static_cast<Fixed>(std::llround(v * kFixedScale));
}
inline double from_fixed(Fixed v) {
  return static_cast<double>(v) / kFixedScale;
}

/// Sums over the live activity buckets and department days, kept up to date with every change
/// to them so that scoring an event does not walk the buckets. Derived, never persisted:
/// rebuilt when `valid` is false (a state just loaded). Excluded from equality.
struct ActiveTotals {
  bool valid = false;
  std::uint32_t users = 0;
  Fixed weight = 0;
  Fixed weighted_engagement = 0;
  std::vector<std::uint32_t> department_users;  ///< by department index
  std::uint32_t departments = 0;                ///< entries of department_users above 0
  bool operator==(const ActiveTotals&) const { return true; }
};

/// What one user currently contributes to its account's activity buckets. Kept on the user so
/// the exact amounts can be taken back out when the user is active again (no rescans).
struct Booking {
  Day day = 0;  ///< the bucket (day of last activity); valid only if `active`
  bool active = false;
  Fixed weight = 0;  ///< role weight
  Fixed weighted_engagement = 0;
  std::int32_t department = -1;  ///< index into AccountState::departments, -1: none
  bool operator==(const Booking&) const = default;
};

/// State of one user within one account. Size is constant.
struct UserState {
  Role explicit_role = Role::kUnknown;  ///< from the `role` trait
  bool did_admin_action = false;        ///< an event whose rule infers_admin (sticky)
  std::string department;               ///< from the `department` trait
  DecayedSum usage;                     ///< weighted product usage
  TimeMs last_active = kNoTime;         ///< latest track event time
  TimeMs role_as_of = kNoTime;          ///< time of the call `role` came from
  TimeMs department_as_of = kNoTime;    ///< time of the call `department` came from
  Booking booking;
  bool operator==(const UserState&) const = default;
};

/// Aggregate of the users whose last activity fell on one day.
struct ActivityBucket {
  Day day = 0;
  std::uint32_t users = 0;
  Fixed weight = 0;
  Fixed weighted_engagement = 0;
  bool operator==(const ActivityBucket&) const = default;
};

/// Users of one department whose last activity fell on one day. Kept in one flat vector per
/// account (not inside each bucket) so that evaluating an account touches contiguous memory.
struct DepartmentDay {
  Day day = 0;
  std::int32_t department = 0;  ///< index into AccountState::departments
  std::uint32_t users = 0;
  bool operator==(const DepartmentDay&) const = default;
};

struct SeatDelta {
  Day day = 0;
  double delta = 0.0;
  bool operator==(const SeatDelta&) const = default;
};

/// State of one account. Its size is bounded by configuration (window days, departments,
/// traits), never by the number of users or events.
struct AccountState {
  /// Activity buckets of the last `active_window_days`, sorted by day. Users whose last activity
  /// is older are inactive; whole buckets expire on a timer.
  std::vector<ActivityBucket> buckets;
  /// Days before this have expired and never come back, even if the window is later widened:
  /// a user's booking on such a day is gone with its bucket.
  Day expired_before = std::numeric_limits<Day>::min();
  /// The same days split by department, sorted by (day, department).
  std::vector<DepartmentDay> department_days;
  ActiveTotals totals;
  /// Every department ever seen active, in order of first activity (index = id). Which of them
  /// are active now is derived from department_days.
  std::vector<std::string> departments;
  /// Decayed fabric strength per category, all with one landmark.
  std::array<double, kFabricCategoryCount> fabric{};
  TimeMs fabric_as_of = kNoTime;
  TimeMs last_activity = kNoTime;  ///< latest track event of any user

  /// After a `seats` snapshot: the snapshot plus later provisioning deltas. Before any
  /// snapshot: the net provisioning deltas alone, added to the known users.
  double seats = 0.0;
  bool seat_snapshot_seen = false;
  double seat_limit = 0.0;             ///< plan's seat ceiling; 0: unknown
  std::vector<SeatDelta> seat_deltas;  ///< per day, within the velocity window, sorted
  std::uint64_t shared_assets = 0;
  std::uint64_t known_users = 0;

  /// Account traits the model reads, sorted by name; each with the time of its latest call.
  std::vector<Trait> traits;
  /// Derived from the traits by refresh_trait_derived() whenever they (or the model) change,
  /// so that scoring an event does not re-run the fit rules and segment rules.
  double fit = 0.0;
  std::int32_t segment = -1;  ///< index into the model's segments; -1: the default half-life

  // What has been published, so that signals fire on transitions only.
  Band band = Band::kCold;
  Pattern pattern = Pattern::kNone;
  /// nullopt: not known (records of builds before it), set silently at the next evaluation.
  std::optional<Routing> routing;
  TimeMs clock = kNoTime;  ///< latest time the account was evaluated at

  bool operator==(const AccountState&) const = default;
};

}  // namespace pqa::rollup
