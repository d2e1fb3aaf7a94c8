// The one configuration schema of the scoring model. Plain values: the YAML loader lives in the
// service (services/scorer/config_loader), which fills this struct and calls validate().
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "pqa/rollup/hash.h"
#include "pqa/rollup/types.h"

namespace pqa::rollup {

/// Hash that lets unordered maps keyed by std::string be queried with a string_view.
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return detail::hash_words(s); }
};

/// How one named `track` event is interpreted.
struct EventRule {
  std::string name;  ///< Segment event name, e.g. "Seat Added".
  EventKind kind = EventKind::kUsage;
  double weight = 1.0;            ///< Usage: engagement weight. Fabric: weight within category.
  std::string quantity_property;  ///< Property holding a count (seats, invitees); empty: none.
  double seat_delta = 0.0;        ///< Seats provisioned per unit of quantity (negative: removed).
  /// Marks its user an admin when no explicit role says otherwise (seed 000: "admin actions,
  /// billing-page access"): the administration events and billing-page views, not every
  /// commercial-intent event (a terms-page view is evaluation, seed 004).
  bool infers_admin = false;
};

enum class FitOp : std::uint8_t { kEquals, kIn, kBetween, kAtLeast, kAtMost, kExists };

/// A firmographic rule: when the account trait matches, `weight` is added to fit.
struct FitRule {
  std::string trait;
  FitOp op = FitOp::kEquals;
  std::vector<std::string> values;  ///< kEquals / kIn (compared case-insensitively).
  double min = 0.0;                 ///< kBetween / kAtLeast (inclusive).
  double max = 0.0;                 ///< kBetween / kAtMost (inclusive).
  double weight = 0.0;              ///< May be negative (a disqualifier).
};

/// A sales segment chooses the decay half-life (matched on the `employees` trait, first match).
struct SegmentRule {
  std::string name;
  double min_employees = 0.0;
  double max_employees = 1e18;
  double half_life_days = 14.0;
};

struct ComponentWeights {
  double breadth = 0.35;
  double depth = 0.25;
  double fabric = 0.25;
  double fit = 0.15;
};

struct RoleWeights {
  double admin = 1.5;
  double billing_owner = 1.5;
  double champion = 1.3;
  double member = 1.0;
  double invited_inactive = 0.2;
  /// A user without an explicit role whose engagement reaches this is inferred a champion.
  double champion_engagement = 0.75;
};

struct EngagementParams {
  double half_life_days = 7.0;  ///< Decay of a user's weighted usage.
  double scale = 10.0;          ///< engagement = 1 - exp(-usage / scale).
};

struct BreadthParams {
  double users_weight = 0.30;        ///< alpha
  double departments_weight = 0.50;  ///< beta (above head count, seed 000)
  double assets_weight = 0.20;       ///< gamma
  double user_cap = 10.0;            ///< active users past this add nothing
  double department_target = 4.0;    ///< departments for full marks
  double asset_cap = 10.0;           ///< shared assets past this add nothing
};

/// fabric = sum over categories c of  share_c * (1 - exp(-F_c / scale)),  share_c = strength_c /
/// sum of strengths, F_c = decayed sum of the category's role-weighted event weights. Saturating
/// per category keeps one frequent event type (comments) from standing in for all the others.
struct FabricParams {
  double scale = 3.0;
  /// Seed 000's signal strengths (medium-high 2, high 3, very high 4), by FabricCategory.
  std::array<double, kFabricCategoryCount> strengths{3.0, 3.0, 4.0, 3.0, 2.0, 4.0};
};

struct DecayParams {
  double default_half_life_days = 14.0;
  /// First match wins; an account matching none (or without `employees`) uses the default.
  std::vector<SegmentRule> segments = {{"smb", 0.0, 99.0, 10.0},
                                       {"mid_market", 100.0, 999.0, 14.0},
                                       {"enterprise", 1000.0, 1e18, 30.0}};
};

struct BandParams {
  double nurture = 40.0;
  double qualified = 60.0;
  double hot = 80.0;
  double hysteresis = 3.0;  ///< points below a threshold before a band is left
  /// Decay alone takes an account down a band only once it has been silent this long.
  /// Without it an account active every working week decays over each weekend and, near a
  /// threshold, crosses down on Monday morning and back up with its first event
  /// (docs/scoring.md §5). 3 days span Friday evening to Monday morning.
  double silence_grace_days = 3.0;
};

struct RoutingParams {
  /// Hot accounts go to full sales only with expansion potential above this (seed 002: "above
  /// 20" of 25).
  double full_sales_expansion_potential = 0.8;
  /// A hot account leaves full sales only with expansion potential this far below the
  /// threshold, so that a potential hovering at it does not flap the routing.
  double full_sales_hysteresis = 0.05;
};

struct SeatParams {
  int velocity_window_days = 14;
  double fill_high = 0.6;
  double fill_low = 0.4;
  double proximity_approaching = 0.7;
  double proximity_at_limit = 0.95;
  /// A pattern, once entered, is kept until the fill rate (or proximity) is this far past the
  /// threshold that entering it needs: one user more or less in a 10-seat account moves the
  /// fill by 0.1, and a fill hovering at a threshold would re-announce the pattern each time.
  double pattern_hysteresis = 0.1;
};

/// Upper bound of ActivityParams::max_departments (a fixed-size set in the scorer).
inline constexpr std::size_t kMaxDepartments = 1024;

struct ActivityParams {
  int active_window_days = 28;
  int max_departments = 64;  ///< departments tracked per account; later ones are not counted
};

struct DecoderParams {
  std::size_t max_event_bytes = 32 * 1024;
  std::size_t max_id_bytes = 256;
  /// An event more than this far ahead of the stream's clock is rejected (a bogus future
  /// timestamp would otherwise age every account at once); 0 disables the check.
  int max_clock_jump_days = 30;
};

struct ModelConfig {
  ComponentWeights weights;
  RoleWeights roles;
  EngagementParams engagement;
  BreadthParams breadth;
  FabricParams fabric;
  DecayParams decay;
  BandParams bands;
  RoutingParams routing;
  SeatParams seats;
  ActivityParams activity;
  DecoderParams decoder;
  std::vector<EventRule> events = default_event_rules();
  double default_usage_weight = 1.0;
  std::vector<FitRule> fit_rules = default_fit_rules();

  /// The taxonomy of docs/scoring.md, core workflow usage weights included.
  static std::vector<EventRule> default_event_rules();
  /// Employees 50..5000 (0.4), a software-like industry (0.3), a team-or-larger plan (0.3).
  static std::vector<FitRule> default_fit_rules();
};

/// A configuration problem: the dotted key and what is wrong with it.
struct ConfigError {
  std::string key;
  std::string problem;
};

/// Checks ranges and consistency; an empty result means the config is usable. Keys are
/// relative to the model and spelled as the YAML spells them ("fit.rules[2].between").
std::vector<ConfigError> validate(const ModelConfig& config);

/// The problems of one entry of a list, keyed by the entry's own field ("weight"). validate()
/// runs them over its lists; the YAML loader runs them on each entry as it reads it, where it
/// knows the entry's place in the file (the taxonomy's list is merged with the built-in events).
std::vector<ConfigError> check_entry(const EventRule& rule);
std::vector<ConfigError> check_entry(const FitRule& rule);
std::vector<ConfigError> check_entry(const SegmentRule& segment);

/// A validated config with its lookup tables built. Immutable and shared by every scorer.
class Model {
 public:
  /// Precondition: validate(config) is empty.
  explicit Model(ModelConfig config);

  const ModelConfig& config() const { return config_; }
  /// The rule for a `track` event name, or nullptr for plain usage.
  const EventRule* rule_for(std::string_view event_name) const;
  /// Trait names the model reads from `group` calls (standard ones plus those fit rules name).
  const std::vector<std::string>& account_traits() const { return account_traits_; }
  /// Stable identifier of the model and its parameters, stamped on every signal.
  const std::string& version() const { return version_; }

  /// Constants derived from the parameters once, instead of on every evaluation.
  struct Derived {
    double log1p_user_cap = 0.0;
    double log1p_asset_cap = 0.0;
    std::array<double, kFabricCategoryCount> fabric_share{};  ///< strength_c / sum of strengths
  };
  const Derived& derived() const { return derived_; }

 private:
  ModelConfig config_;
  std::unordered_map<std::string, std::size_t, StringHash, std::equal_to<>> rule_index_;
  std::vector<std::string> account_traits_;
  std::string version_;
  Derived derived_;
};

}  // namespace pqa::rollup
