#include "pqa/rollup/config.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "pqa/rollup/hash.h"

namespace pqa::rollup {

std::vector<EventRule> ModelConfig::default_event_rules() {
  // Fabric events weigh 1 within their category (the category carries seed 000's strength).
  // Removals move seats but are not buying signals, so they weigh nothing.
  using K = EventKind;
  return {
      {"Seat Added", K::kProvisioning, 1.0, "seats", 1.0},
      {"Seat Removed", K::kProvisioning, 0.0, "seats", -1.0},
      {"Bulk Invite Sent", K::kProvisioning, 1.0, "count", 1.0},
      {"User Invited", K::kProvisioning, 1.0, "", 1.0},
      {"Invite Sent", K::kProvisioning, 1.0, "", 1.0},
      {"Account Added User", K::kProvisioning, 1.0, "", 1.0},
      {"Account Removed User", K::kProvisioning, 0.0, "", -1.0},
      {"Admin Role Assigned", K::kAdministration, 1.0, "", 0.0, true},
      {"SSO Configured", K::kAdministration, 1.0, "", 0.0, true},
      {"SCIM Connected", K::kAdministration, 1.0, "", 0.0, true},
      {"Billing Page Viewed", K::kCommercialIntent, 1.0, "", 0.0, true},
      {"Plan Comparison Viewed", K::kCommercialIntent, 1.0, "", 0.0},
      {"Contact Sales Clicked", K::kCommercialIntent, 1.0, "", 0.0},
      {"Terms Page Viewed", K::kCommercialIntent, 1.0, "", 0.0},
      {"Asset Shared", K::kCollaboration, 1.0, "", 0.0},
      {"Comment Added", K::kCollaboration, 1.0, "", 0.0},
      {"Workspace Created", K::kSharedAsset, 1.0, "", 0.0},
      {"Shared Project Created", K::kSharedAsset, 1.0, "", 0.0},
      {"Template Published", K::kSharedAsset, 1.0, "", 0.0},
      // Core workflow events weigh more in engagement than views.
      {"Report Created", K::kUsage, 2.0, "", 0.0},
      {"Query Run", K::kUsage, 2.0, "", 0.0},
      {"Integration Synced", K::kUsage, 2.0, "", 0.0},
  };
}

std::vector<FitRule> ModelConfig::default_fit_rules() {
  return {
      {"employees", FitOp::kBetween, {}, 50.0, 5000.0, 0.4},
      {"industry",
       FitOp::kIn,
       {"software", "fintech", "saas", "technology", "financial services"},
       0.0,
       0.0,
       0.3},
      {"plan", FitOp::kIn, {"team", "business", "pro"}, 0.0, 0.0, 0.3},
  };
}

namespace {

/// A role weight multiplies into fixed-point sums over the active users (state.h: int64 at
/// 1e-9, so at most ~9.2e9): 100 is far above any sensible weight and keeps ~90 million
/// users of the heaviest role within range.
constexpr double kMaxRoleWeight = 100.0;
/// Event and fit weights: far above any sensible value, far below where decayed sums of
/// them could overflow to infinity (and infinity times a zero decay factor is NaN).
constexpr double kMaxWeight = 1e6;
/// A grace longer than a year would keep every band for good: a typo, not a policy.
constexpr double kMaxSilenceGraceDays = 365.0;

std::string format(double v) {
  std::ostringstream o;
  o << v;
  return o.str();
}

class Checker {
 public:
  void positive(const std::string& key, double v) {
    if (!(v > 0.0) || !std::isfinite(v)) add(key, "must be a positive number");
  }
  void non_negative(const std::string& key, double v) {
    if (!(v >= 0.0) || !std::isfinite(v)) add(key, "must be zero or positive");
  }
  void unit(const std::string& key, double v) {
    if (!(v >= 0.0 && v <= 1.0)) add(key, "must be between 0 and 1");
  }
  /// Bounds a weight's size, on either side of 0 (fit weights may be negative): far above any
  /// sensible value, fixed-point sums (state.h) would overflow.
  void at_most(const std::string& key, double v, double max) {
    if (!std::isfinite(v)) return;  // the other checks name that
    if (v > max) add(key, "must be at most " + format(max));
    if (v < -max) add(key, "must be at least " + format(-max));
  }
  void finite(const std::string& key, double v) {
    if (!std::isfinite(v)) add(key, "must be a finite number");
  }
  void add(const std::string& key, std::string problem) {
    errors.push_back({key, std::move(problem)});
  }
  std::vector<ConfigError> errors;
};

/// Adds an entry's problems under its place in the list (`key`, e.g. "fit.rules[2]").
void add_entry_errors(Checker& ck, const std::string& key, std::vector<ConfigError> errors) {
  for (auto& e : errors) ck.add(key + "." + e.key, std::move(e.problem));
}

void check_events(const ModelConfig& c, Checker& ck) {
  std::vector<std::string> names;
  for (std::size_t i = 0; i < c.events.size(); ++i) {
    add_entry_errors(ck, "taxonomy.events[" + std::to_string(i) + "]", check_entry(c.events[i]));
    names.push_back(c.events[i].name);
  }
  std::sort(names.begin(), names.end());
  auto dup = std::adjacent_find(names.begin(), names.end());
  if (dup != names.end()) ck.add("taxonomy.events", "event '" + *dup + "' is listed twice");
}

void check_fit(const ModelConfig& c, Checker& ck) {
  bool any_positive = false;
  for (std::size_t i = 0; i < c.fit_rules.size(); ++i) {
    add_entry_errors(ck, "fit.rules[" + std::to_string(i) + "]", check_entry(c.fit_rules[i]));
    any_positive = any_positive || c.fit_rules[i].weight > 0;
  }
  // Fit is the matched share of the positive weights (docs/scoring.md): with none, every
  // account's fit is 0 and weights.fit is lost from every score.
  if (c.weights.fit > 0 && !any_positive)
    ck.add("fit.rules",
           "no rule has a positive weight, so fit is 0 for every account: add one, "
           "or set weights.fit to 0");
}

void check_segments(const ModelConfig& c, Checker& ck) {
  for (std::size_t i = 0; i < c.decay.segments.size(); ++i)
    add_entry_errors(ck, "decay.segments[" + std::to_string(i) + "]",
                     check_entry(c.decay.segments[i]));
}

}  // namespace

std::vector<ConfigError> check_entry(const EventRule& rule) {
  Checker ck;
  if (rule.name.empty()) ck.add("name", "must not be empty");
  ck.non_negative("weight", rule.weight);
  ck.at_most("weight", rule.weight, kMaxWeight);
  if (!(std::abs(rule.seat_delta) <= 1e6)) ck.add("seat_delta", "must be within +-1000000");
  // A usage event only feeds its user's engagement (scoring.cpp, apply_track): these would be
  // ignored, so they are refused rather than silently accepted.
  if (rule.kind == EventKind::kUsage) {
    if (rule.seat_delta != 0.0) ck.add("seat_delta", "a usage event changes no seats");
    if (!rule.quantity_property.empty())
      ck.add("quantity_property", "a usage event reads no quantity");
    if (rule.infers_admin) ck.add("infers_admin", "a usage event infers no admin");
  }
  return ck.errors;
}

std::vector<ConfigError> check_entry(const FitRule& rule) {
  Checker ck;
  if (rule.trait.empty()) ck.add("trait", "must not be empty");
  ck.finite("weight", rule.weight);
  ck.at_most("weight", rule.weight, kMaxWeight);
  if (rule.op == FitOp::kEquals && rule.values.empty()) ck.add("equals", "must name a value");
  if (rule.op == FitOp::kIn && rule.values.empty()) ck.add("in", "must list at least one value");
  if (rule.op == FitOp::kBetween && !(rule.min <= rule.max))
    ck.add("between", "must be [min, max] with min <= max");
  if (rule.op == FitOp::kAtLeast) ck.finite("at_least", rule.min);
  if (rule.op == FitOp::kAtMost) ck.finite("at_most", rule.max);
  return ck.errors;
}

std::vector<ConfigError> check_entry(const SegmentRule& segment) {
  Checker ck;
  if (segment.name.empty()) ck.add("name", "must not be empty");
  ck.positive("half_life_days", segment.half_life_days);
  if (!(segment.min_employees <= segment.max_employees))
    ck.add("max_employees", "must be >= min_employees");
  return ck.errors;
}

std::vector<ConfigError> validate(const ModelConfig& c) {
  Checker ck;
  const auto& w = c.weights;
  ck.unit("weights.breadth", w.breadth);
  ck.unit("weights.depth", w.depth);
  ck.unit("weights.fabric", w.fabric);
  ck.unit("weights.fit", w.fit);
  if (std::abs(w.breadth + w.depth + w.fabric + w.fit - 1.0) > 1e-6)
    ck.add("weights", "breadth + depth + fabric + fit must sum to 1");

  const auto& r = c.roles;
  for (auto [key, v] : {std::pair{"roles.admin", r.admin},
                        {"roles.billing_owner", r.billing_owner},
                        {"roles.champion", r.champion},
                        {"roles.member", r.member}}) {
    ck.positive(key, v);
    ck.at_most(key, v, kMaxRoleWeight);
  }
  ck.non_negative("roles.invited_inactive", r.invited_inactive);
  ck.at_most("roles.invited_inactive", r.invited_inactive, kMaxRoleWeight);
  ck.unit("roles.champion_engagement", r.champion_engagement);

  ck.positive("engagement.half_life_days", c.engagement.half_life_days);
  ck.positive("engagement.scale", c.engagement.scale);

  const auto& b = c.breadth;
  ck.unit("breadth.users_weight", b.users_weight);
  ck.unit("breadth.departments_weight", b.departments_weight);
  ck.unit("breadth.assets_weight", b.assets_weight);
  if (std::abs(b.users_weight + b.departments_weight + b.assets_weight - 1.0) > 1e-6)
    ck.add("breadth", "users_weight + departments_weight + assets_weight must sum to 1");
  ck.positive("breadth.user_cap", b.user_cap);
  ck.positive("breadth.department_target", b.department_target);
  ck.positive("breadth.asset_cap", b.asset_cap);

  ck.positive("fabric.scale", c.fabric.scale);
  double strength_sum = 0.0;
  for (std::size_t i = 0; i < kFabricCategoryCount; ++i) {
    ck.non_negative("fabric.strengths." + std::string(to_string(static_cast<FabricCategory>(i))),
                    c.fabric.strengths[i]);
    strength_sum += c.fabric.strengths[i];
  }
  if (!(strength_sum > 0)) ck.add("fabric.strengths", "at least one strength must be positive");
  ck.positive("decay.default_half_life_days", c.decay.default_half_life_days);

  const auto& bands = c.bands;
  if (!(bands.nurture > 0 && bands.nurture < bands.qualified && bands.qualified < bands.hot &&
        bands.hot <= 100))
    ck.add("bands", "thresholds must satisfy 0 < nurture < qualified < hot <= 100");
  if (!(bands.hysteresis >= 0 && bands.hysteresis < bands.qualified - bands.nurture &&
        bands.hysteresis < bands.hot - bands.qualified && bands.hysteresis < bands.nurture))
    ck.add("bands.hysteresis", "must be >= 0 and smaller than the gap between thresholds");
  ck.non_negative("bands.silence_grace_days", bands.silence_grace_days);
  ck.at_most("bands.silence_grace_days", bands.silence_grace_days, kMaxSilenceGraceDays);

  ck.unit("routing.full_sales_expansion_potential", c.routing.full_sales_expansion_potential);
  if (!(c.routing.full_sales_hysteresis >= 0 &&
        c.routing.full_sales_hysteresis <= c.routing.full_sales_expansion_potential))
    ck.add("routing.full_sales_hysteresis",
           "must be >= 0 and at most routing.full_sales_expansion_potential");

  const auto& s = c.seats;
  if (s.velocity_window_days < 1 || s.velocity_window_days > 366)
    ck.add("seats.velocity_window_days", "must be between 1 and 366");
  ck.unit("seats.fill_high", s.fill_high);
  ck.unit("seats.fill_low", s.fill_low);
  if (!(s.fill_low <= s.fill_high)) ck.add("seats.fill_low", "must be <= seats.fill_high");
  ck.unit("seats.proximity_approaching", s.proximity_approaching);
  ck.unit("seats.proximity_at_limit", s.proximity_at_limit);
  if (!(s.pattern_hysteresis >= 0 && s.pattern_hysteresis <= 0.5))
    ck.add("seats.pattern_hysteresis", "must be between 0 and 0.5");

  if (c.activity.active_window_days < 1 || c.activity.active_window_days > 366)
    ck.add("activity.active_window_days", "must be between 1 and 366");
  if (c.activity.max_departments < 1 || c.activity.max_departments > 1024)
    ck.add("activity.max_departments", "must be between 1 and 1024");

  if (c.decoder.max_event_bytes < 64 || c.decoder.max_event_bytes > (16u << 20))
    ck.add("decoder.max_event_bytes", "must be between 64 and 16777216");
  if (c.decoder.max_id_bytes < 1 || c.decoder.max_id_bytes > 4096)
    ck.add("decoder.max_id_bytes", "must be between 1 and 4096");
  if (c.decoder.max_clock_jump_days < 0 || c.decoder.max_clock_jump_days > 36500)
    ck.add("decoder.max_clock_jump_days", "must be between 0 and 36500");

  ck.non_negative("taxonomy.default_usage_weight", c.default_usage_weight);
  ck.at_most("taxonomy.default_usage_weight", c.default_usage_weight, kMaxWeight);
  check_events(c, ck);
  check_fit(c, ck);
  check_segments(c, ck);
  return ck.errors;
}

namespace {

/// A string in the canonical form: its length first, so that no two lists of strings read the
/// same ("financial services" against "financial", "services").
struct Text {
  const std::string& s;
};
std::ostream& operator<<(std::ostream& o, Text t) {
  return o << t.s.size() << ':' << t.s;
}

/// Every parameter in a canonical text form, so that the version changes with any of them.
std::string canonical(const ModelConfig& c) {
  std::ostringstream o;
  o.precision(17);
  const auto& w = c.weights;
  o << w.breadth << ' ' << w.depth << ' ' << w.fabric << ' ' << w.fit << '|';
  const auto& r = c.roles;
  o << r.admin << ' ' << r.billing_owner << ' ' << r.champion << ' ' << r.member << ' '
    << r.invited_inactive << ' ' << r.champion_engagement << '|';
  o << c.engagement.half_life_days << ' ' << c.engagement.scale << '|';
  const auto& b = c.breadth;
  o << b.users_weight << ' ' << b.departments_weight << ' ' << b.assets_weight << ' ' << b.user_cap
    << ' ' << b.department_target << ' ' << b.asset_cap << '|';
  o << c.fabric.scale;
  for (double v : c.fabric.strengths) o << ' ' << v;
  o << '|';
  o << c.decay.default_half_life_days;
  for (const auto& s : c.decay.segments)
    o << ' ' << Text{s.name} << ' ' << s.min_employees << ' ' << s.max_employees << ' '
      << s.half_life_days;
  o << '|' << c.bands.nurture << ' ' << c.bands.qualified << ' ' << c.bands.hot << ' '
    << c.bands.hysteresis << ' ' << c.bands.silence_grace_days << '|'
    << c.routing.full_sales_expansion_potential << ' ' << c.routing.full_sales_hysteresis << '|';
  const auto& s = c.seats;
  o << s.velocity_window_days << ' ' << s.fill_high << ' ' << s.fill_low << ' '
    << s.proximity_approaching << ' ' << s.proximity_at_limit << ' ' << s.pattern_hysteresis << '|';
  o << c.activity.active_window_days << ' ' << c.activity.max_departments << '|';
  o << c.default_usage_weight;
  for (const auto& e : c.events)
    o << '\n'
      << Text{e.name} << '\t' << static_cast<int>(e.kind) << ' ' << e.weight << ' '
      << Text{e.quantity_property} << ' ' << e.seat_delta << ' ' << e.infers_admin;
  for (const auto& f : c.fit_rules) {
    o << '\n'
      << Text{f.trait} << '\t' << static_cast<int>(f.op) << ' ' << f.min << ' ' << f.max << ' '
      << f.weight;
    for (const auto& v : f.values) o << ' ' << Text{v};
  }
  return o.str();
}

}  // namespace

Model::Model(ModelConfig config) : config_(std::move(config)) {
  for (std::size_t i = 0; i < config_.events.size(); ++i)
    rule_index_.emplace(config_.events[i].name, i);
  account_traits_ = {"employees", "industry", "plan", "seat_limit", "seats"};
  for (const auto& rule : config_.fit_rules) account_traits_.push_back(rule.trait);
  std::sort(account_traits_.begin(), account_traits_.end());
  account_traits_.erase(std::unique(account_traits_.begin(), account_traits_.end()),
                        account_traits_.end());
  derived_.log1p_user_cap = std::log1p(config_.breadth.user_cap);
  derived_.log1p_asset_cap = std::log1p(config_.breadth.asset_cap);
  double strength_sum = 0.0;
  for (double v : config_.fabric.strengths) strength_sum += v;
  for (std::size_t i = 0; i < kFabricCategoryCount; ++i)
    derived_.fabric_share[i] = config_.fabric.strengths[i] / strength_sum;
  // The formulas' revision, then the parameters' hash: a change of the code that gives other
  // results for the same parameters (revision 2: the silence grace, routing_changed, contracting
  // needing a low fill, seat patterns kept with hysteresis) bumps it, so that stored accounts are
  // re-derived and re-evaluated (Processor::restore) and every signal says which formulas made it.
  version_ = "pqa-2.";
  detail::append_hex(version_, detail::mix64(detail::fnv1a64(canonical(config_))) >> 32, 8);
}

const EventRule* Model::rule_for(std::string_view event_name) const {
  auto it = rule_index_.find(event_name);
  return it == rule_index_.end() ? nullptr : &config_.events[it->second];
}

}  // namespace pqa::rollup
