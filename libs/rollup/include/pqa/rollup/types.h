// Vocabulary types of the scoring core: time, ids, roles, bands, patterns, routing.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <utility>

namespace pqa::rollup {

/// Event time in milliseconds since the Unix epoch (UTC). The core never reads a clock:
/// every function that needs "now" takes it as a value.
using TimeMs = std::int64_t;
/// Whole UTC days since the Unix epoch; the granularity of activity windows.
using Day = std::int32_t;

inline constexpr TimeMs kMsPerDay = 86'400'000;
inline constexpr TimeMs kNever = std::numeric_limits<TimeMs>::max();
inline constexpr TimeMs kNoTime = std::numeric_limits<TimeMs>::min();

constexpr Day day_of(TimeMs t) {
  // Floor division, so times before the epoch land on the right day.
  return static_cast<Day>(t >= 0 ? t / kMsPerDay : -((-t + kMsPerDay - 1) / kMsPerDay));
}
constexpr TimeMs start_of_day(Day d) {
  return static_cast<TimeMs>(d) * kMsPerDay;
}

/// Whether a call at time `t` that sends `value` replaces what a call at `held_as_of` set
/// (`held`): the later call wins, and between two calls of the same time the greater value,
/// so that the outcome does not depend on which of them arrived first (backfills and batch
/// imports often stamp many calls alike). A call of the same time and value changes nothing.
template <typename T>
bool later_call_wins(TimeMs t, const T& value, TimeMs held_as_of, const T& held) {
  return t > held_as_of || (t == held_as_of && held < value);
}

/// A string id that cannot be confused with another kind of id (Redpanda-style named types).
template <typename Tag>
class StrongId {
 public:
  StrongId() = default;
  explicit StrongId(std::string value) : value_(std::move(value)) {}
  const std::string& str() const { return value_; }
  bool empty() const { return value_.empty(); }
  /// Replaces the value, reusing the allocated capacity (hot-path decoding reuses events).
  void assign(std::string_view v) { value_.assign(v); }
  void clear() { value_.clear(); }
  auto operator<=>(const StrongId&) const = default;

 private:
  std::string value_;
};
using AccountId = StrongId<struct AccountIdTag>;
using UserId = StrongId<struct UserIdTag>;

enum class Role : std::uint8_t { kUnknown, kMember, kChampion, kAdmin, kBillingOwner };
enum class Band : std::uint8_t { kCold, kNurture, kQualified, kHot };
enum class Pattern : std::uint8_t {
  kNone,
  kHealthyExpansion,
  kStalledProvisioning,
  kSaturated,
  kContracting
};
enum class Routing : std::uint8_t { kNone, kSelfServe, kPlsAssist, kFullSales, kEnablement };

/// What a `track` event means to the model. Everything not named in the taxonomy is usage.
enum class EventKind : std::uint8_t {
  kUsage,
  kProvisioning,
  kAdministration,
  kCommercialIntent,
  kCollaboration,
  kSharedAsset,
};

/// Account-fabric categories (seed 000's taxonomy). Breadth expansion is derived, not sent.
enum class FabricCategory : std::uint8_t {
  kProvisioning,
  kAdministration,
  kCommercialIntent,
  kCollaboration,
  kSharedAsset,
  kBreadthExpansion,
};
inline constexpr std::size_t kFabricCategoryCount = 6;

std::string_view to_string(Role r);
std::string_view to_string(Band b);
std::string_view to_string(Pattern p);
std::string_view to_string(Routing r);
std::string_view to_string(EventKind k);
std::string_view to_string(FabricCategory c);

/// Parses an explicit role trait; returns kUnknown for anything else (then the role is inferred).
Role parse_role(std::string_view s);

}  // namespace pqa::rollup
