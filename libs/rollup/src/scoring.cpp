#include "pqa/rollup/scoring.h"

#include <algorithm>
#include <bitset>
#include <charconv>
#include <cmath>

namespace pqa::rollup {

std::string_view to_string(SignalKind k) {
  switch (k) {
    case SignalKind::kThresholdCrossed:
      return "threshold_crossed";
    case SignalKind::kSeatExpansion:
      return "seat_expansion";
    case SignalKind::kBreadthExpansion:
      return "breadth_expansion";
    case SignalKind::kRoutingChanged:
      return "routing_changed";
  }
  return "unknown";
}

const std::vector<std::string_view>& signal_kind_names() {
  static_assert(static_cast<std::size_t>(SignalKind::kRoutingChanged) + 1 == kSignalKindCount);
  static const std::vector<std::string_view> names = [] {
    std::vector<std::string_view> all;
    for (std::size_t k = 0; k < kSignalKindCount; ++k)
      all.push_back(to_string(static_cast<SignalKind>(k)));
    return all;
  }();
  return names;
}

namespace {

constexpr double days_ms(double days) {
  return days * static_cast<double>(kMsPerDay);
}

const Trait* find_trait(const AccountState& a, std::string_view name) {
  for (const auto& t : a.traits)
    if (t.name == name) return &t;
  return nullptr;
}

std::optional<double> numeric_trait(const AccountState& a, std::string_view name) {
  const Trait* t = find_trait(a, name);
  if (t == nullptr) return std::nullopt;
  if (const double* d = std::get_if<double>(&t->value)) return *d;
  return std::nullopt;
}

const SegmentRule* segment_of(const Model& model, const AccountState& a) {
  const auto& segments = model.config().decay.segments;
  if (a.segment < 0 || static_cast<std::size_t>(a.segment) >= segments.size()) return nullptr;
  return &segments[static_cast<std::size_t>(a.segment)];
}

double account_half_life_ms(const Model& model, const AccountState& a) {
  const SegmentRule* s = segment_of(model, a);
  return days_ms(s ? s->half_life_days : model.config().decay.default_half_life_days);
}

/// The behavioural components' weighted share of the score (0..1): what decay scales.
double behavioural_share(const ComponentWeights& w, const Components& c) {
  return w.breadth * c.breadth + w.depth * c.depth + w.fabric * c.fabric;
}

/// The end of the silence through which decay alone cannot lower the account's band
/// (`bands.silence_grace_days` after its last activity), rounded up to a millisecond.
TimeMs silence_grace_end(const Model& model, const AccountState& a) {
  return a.last_activity +
         static_cast<TimeMs>(std::ceil(days_ms(model.config().bands.silence_grace_days)));
}

Day window_start(Day today, int window_days) {
  return today - window_days + 1;
}

FabricCategory category_of(EventKind k) {
  switch (k) {
    case EventKind::kProvisioning:
      return FabricCategory::kProvisioning;
    case EventKind::kAdministration:
      return FabricCategory::kAdministration;
    case EventKind::kCommercialIntent:
      return FabricCategory::kCommercialIntent;
    case EventKind::kCollaboration:
      return FabricCategory::kCollaboration;
    case EventKind::kSharedAsset:
      return FabricCategory::kSharedAsset;
    case EventKind::kUsage:
      break;
  }
  return FabricCategory::kProvisioning;
}

// ---- fabric -----------------------------------------------------------------------------------

void add_fabric(AccountState& a, FabricCategory c, double strength, TimeMs t, double hl_ms) {
  if (a.fabric_as_of == kNoTime) {
    a.fabric_as_of = t;
  } else if (t > a.fabric_as_of) {
    const double f = decay_factor(t - a.fabric_as_of, hl_ms);
    for (double& v : a.fabric) v *= f;
    a.fabric_as_of = t;
  } else {
    strength *= decay_factor(a.fabric_as_of - t, hl_ms);
  }
  a.fabric[static_cast<std::size_t>(c)] += strength;
}

// ---- activity buckets -------------------------------------------------------------------------

std::vector<ActivityBucket>::iterator find_bucket(AccountState& a, Day day) {
  auto it = std::lower_bound(a.buckets.begin(), a.buckets.end(), day,
                             [](const ActivityBucket& b, Day d) { return b.day < d; });
  return it != a.buckets.end() && it->day == day ? it : a.buckets.end();
}

void count_department_user(ActiveTotals& t, std::int32_t dept, int delta) {
  const auto d = static_cast<std::size_t>(dept);
  if (t.department_users.size() <= d) t.department_users.resize(d + 1, 0u);
  const std::uint32_t before = t.department_users[d];
  t.department_users[d] = static_cast<std::uint32_t>(static_cast<int>(before) + delta);
  if (before == 0 && t.department_users[d] > 0) ++t.departments;
  if (before > 0 && t.department_users[d] == 0) --t.departments;
}

void add_department_count(AccountState& a, Day day, std::int32_t dept, int delta) {
  if (dept < 0) return;
  auto it = std::lower_bound(a.department_days.begin(), a.department_days.end(),
                             std::pair{day, dept}, [](const DepartmentDay& x, const auto& key) {
                               return std::pair{x.day, x.department} < key;
                             });
  if (it == a.department_days.end() || it->day != day || it->department != dept) {
    if (delta < 0) return;  // nothing booked: nothing to take back
    it = a.department_days.insert(it, {day, dept, 0u});
  }
  it->users = static_cast<std::uint32_t>(static_cast<int>(it->users) + delta);
  if (it->users == 0) a.department_days.erase(it);
  if (a.totals.valid) count_department_user(a.totals, dept, delta);
}

void unbook(AccountState& a, const Booking& booking) {
  if (!booking.active || booking.day < a.expired_before) return;  // gone with its bucket
  auto it = find_bucket(a, booking.day);
  if (it == a.buckets.end()) return;  // the bucket expired: the booking left with it
  it->users -= 1;
  it->weight -= booking.weight;
  it->weighted_engagement -= booking.weighted_engagement;
  if (a.totals.valid) {
    a.totals.users -= 1;
    a.totals.weight -= booking.weight;
    a.totals.weighted_engagement -= booking.weighted_engagement;
  }
  add_department_count(a, booking.day, booking.department, -1);
  if (it->users == 0) a.buckets.erase(it);
}

void book(AccountState& a, const Booking& booking) {
  if (!booking.active || booking.day < a.expired_before) return;
  auto it = std::lower_bound(a.buckets.begin(), a.buckets.end(), booking.day,
                             [](const ActivityBucket& b, Day d) { return b.day < d; });
  if (it == a.buckets.end() || it->day != booking.day) {
    ActivityBucket fresh;
    fresh.day = booking.day;
    it = a.buckets.insert(it, std::move(fresh));
  }
  it->users += 1;
  it->weight += booking.weight;
  it->weighted_engagement += booking.weighted_engagement;
  if (a.totals.valid) {
    a.totals.users += 1;
    a.totals.weight += booking.weight;
    a.totals.weighted_engagement += booking.weighted_engagement;
  }
  add_department_count(a, booking.day, booking.department, +1);
}

/// Recomputes the totals from the buckets (exact: integer sums).
void rebuild_totals(AccountState& a) {
  ActiveTotals t;
  t.valid = true;
  for (const auto& b : a.buckets) {
    t.users += b.users;
    t.weight += b.weight;
    t.weighted_engagement += b.weighted_engagement;
  }
  for (const auto& d : a.department_days)
    count_department_user(t, d.department, static_cast<int>(d.users));
  a.totals = std::move(t);
}

/// Drops what has left its window: whole activity buckets and seat-velocity days.
void expire(const Model& model, AccountState& a, Day today) {
  const Day active_from = window_start(today, model.config().activity.active_window_days);
  a.expired_before = std::max(a.expired_before, active_from);
  auto first_live = std::find_if(a.buckets.begin(), a.buckets.end(),
                                 [&](const ActivityBucket& b) { return b.day >= active_from; });
  const bool buckets_expired = first_live != a.buckets.begin();
  a.buckets.erase(a.buckets.begin(), first_live);
  auto first_dept = std::find_if(a.department_days.begin(), a.department_days.end(),
                                 [&](const DepartmentDay& d) { return d.day >= active_from; });
  a.department_days.erase(a.department_days.begin(), first_dept);
  if (buckets_expired || !a.totals.valid) rebuild_totals(a);
  const Day velocity_from = window_start(today, model.config().seats.velocity_window_days);
  auto first_delta = std::find_if(a.seat_deltas.begin(), a.seat_deltas.end(),
                                  [&](const SeatDelta& d) { return d.day >= velocity_from; });
  a.seat_deltas.erase(a.seat_deltas.begin(), first_delta);
}

// ---- seats ------------------------------------------------------------------------------------

void record_seat_delta(const Model& model, AccountState& a, double delta, TimeMs t, Day today) {
  const Day day = day_of(t);
  if (delta == 0.0 || day < window_start(today, model.config().seats.velocity_window_days)) return;
  auto it = std::lower_bound(a.seat_deltas.begin(), a.seat_deltas.end(), day,
                             [](const SeatDelta& d, Day x) { return d.day < x; });
  if (it == a.seat_deltas.end() || it->day != day) it = a.seat_deltas.insert(it, {day, 0.0});
  it->delta += delta;
}

void change_seats(const Model& model, AccountState& a, double delta, TimeMs t, Day today) {
  const double before = a.seats;
  // Before a snapshot `seats` is a net change relative to the known users, so it may be < 0.
  a.seats = a.seat_snapshot_seen ? std::max(0.0, a.seats + delta) : a.seats + delta;
  record_seat_delta(model, a, a.seats - before, t, today);
}

// ---- traits -----------------------------------------------------------------------------------

/// Sets a trait from a call at time `t` unless a later call set it, or a call of the same
/// time set it to a value that wins the tie; false if one did (or if it holds this value
/// already from a call of this time: a redelivered call changes nothing).
bool set_trait(AccountState& a, const Trait& trait, TimeMs t) {
  auto it = std::lower_bound(a.traits.begin(), a.traits.end(), trait.name,
                             [](const Trait& x, const std::string& n) { return x.name < n; });
  if (it == a.traits.end() || it->name != trait.name) {
    it = a.traits.insert(it, trait);
  } else {
    if (!later_call_wins(t, trait.value, it->as_of, it->value)) return false;
    it->value = trait.value;
  }
  it->as_of = t;
  return true;
}

void apply_account_traits(const Model& model, AccountState& a, const Event& e, Day today) {
  // Group calls send some traits at a time, and each trait follows its own latest call: an
  // older call that arrives late still sets the traits no later call has set.
  bool applied = false;
  for (const Trait& t : e.account_traits) {
    if (!set_trait(a, t, e.timestamp)) continue;
    applied = true;
    const double* value = std::get_if<double>(&t.value);
    if (value == nullptr) continue;
    if (t.name == "seat_limit") a.seat_limit = *value;
    if (t.name != "seats") continue;
    const double before =
        a.seat_snapshot_seen ? a.seats : *value;  // a first snapshot is not growth
    a.seats = *value;
    a.seat_snapshot_seen = true;
    record_seat_delta(model, a, a.seats - before, e.timestamp, today);
  }
  if (applied) refresh_trait_derived(model, a);
}

// ---- users ------------------------------------------------------------------------------------

/// Index of a department, adding it (and reporting breadth expansion) on its first activity.
/// `hint`: the index the user was booked under last time (usually the answer), checked before
/// the search.
std::int32_t department_index(const Model& model, AccountState& a, const std::string& name,
                              std::int32_t hint, bool& is_new) {
  is_new = false;
  if (hint >= 0 && static_cast<std::size_t>(hint) < a.departments.size() &&
      a.departments[static_cast<std::size_t>(hint)] == name)
    return hint;
  for (std::size_t i = 0; i < a.departments.size(); ++i)
    if (a.departments[i] == name) return static_cast<std::int32_t>(i);
  if (a.departments.size() >= static_cast<std::size_t>(model.config().activity.max_departments))
    return -1;
  a.departments.push_back(name);
  is_new = true;
  return static_cast<std::int32_t>(a.departments.size() - 1);
}

struct Aggregates {
  std::uint32_t active_users = 0;
  Fixed weight = 0;
  Fixed weighted_engagement = 0;
  std::uint32_t departments = 0;
};

Aggregates aggregate(const Model& model, const AccountState& a, Day today) {
  Aggregates g;
  const Day live_from = window_start(today, model.config().activity.active_window_days);
  const bool all_live = (a.buckets.empty() || a.buckets.front().day >= live_from) &&
                        (a.department_days.empty() || a.department_days.front().day >= live_from);
  if (a.totals.valid && all_live)  // the common case: O(1)
    return {a.totals.users, a.totals.weight, a.totals.weighted_engagement, a.totals.departments};
  const Day from = window_start(today, model.config().activity.active_window_days);
  for (const auto& b : a.buckets) {
    if (b.day < from) continue;
    g.active_users += b.users;
    g.weight += b.weight;
    g.weighted_engagement += b.weighted_engagement;
  }
  std::bitset<kMaxDepartments> seen;
  for (const auto& d : a.department_days) {
    const auto dept = static_cast<std::size_t>(d.department);
    if (d.day >= from && d.users > 0 && !seen.test(dept)) {
      seen.set(dept);
      ++g.departments;
    }
  }
  return g;
}

// ---- evaluation -------------------------------------------------------------------------------

double threshold_of(const BandParams& p, Band b) {
  switch (b) {
    case Band::kNurture:
      return p.nurture;
    case Band::kQualified:
      return p.qualified;
    case Band::kHot:
      return p.hot;
    case Band::kCold:
      break;
  }
  return 0.0;
}

}  // namespace

Band band_with_hysteresis(const BandParams& p, double score, Band previous) {
  Band raw = Band::kCold;
  for (Band b : {Band::kNurture, Band::kQualified, Band::kHot})
    if (score >= threshold_of(p, b)) raw = b;
  if (raw >= previous) return raw;
  for (auto b = static_cast<int>(previous); b >= 1; --b) {
    const auto band = static_cast<Band>(b);
    if (score >= threshold_of(p, band) - p.hysteresis) return band;
  }
  return Band::kCold;
}

Pattern classify_seats(const SeatParams& p, const SeatMetrics& m, Pattern previous) {
  const bool limit_known = m.seat_limit > 0;
  // The pattern held gets `pattern_hysteresis` of slack on its fill and proximity thresholds
  // (velocity's sign is not relaxed: it changes by whole seats, not by noise).
  const auto slack = [&](Pattern pattern) {
    return pattern == previous ? p.pattern_hysteresis : 0.0;
  };
  // Seed 000: falling fill, negative velocity, receding proximity. Removing idle seats so that
  // the seats left are well used (fill high) is right-sizing, not churn risk.
  if (m.seat_velocity < 0 && m.fill_rate < p.fill_high + slack(Pattern::kContracting))
    return Pattern::kContracting;
  if (const double h = slack(Pattern::kSaturated);
      m.fill_rate >= p.fill_high - h && m.seat_velocity == 0 && limit_known &&
      m.seat_limit_proximity >= p.proximity_at_limit - h)
    return Pattern::kSaturated;
  if (const double h = slack(Pattern::kHealthyExpansion);
      m.fill_rate >= p.fill_high - h && m.seat_velocity > 0 &&
      (!limit_known || m.seat_limit_proximity >= p.proximity_approaching - h))
    return Pattern::kHealthyExpansion;
  if (const double h = slack(Pattern::kStalledProvisioning);
      m.fill_rate < p.fill_low + h && m.seat_velocity > 0 &&
      (!limit_known || m.seat_limit_proximity < p.proximity_approaching + h))
    return Pattern::kStalledProvisioning;
  return Pattern::kNone;
}

Routing route(const ModelConfig& c, const Score& s, std::optional<Routing> previous) {
  if (s.single_user_activation) return Routing::kEnablement;
  switch (s.band) {
    case Band::kCold:
      return Routing::kNone;
    case Band::kNurture:
      return Routing::kSelfServe;
    case Band::kQualified:
      return Routing::kPlsAssist;
    case Band::kHot: {
      const double enter = c.routing.full_sales_expansion_potential;
      const double stay = enter - c.routing.full_sales_hysteresis;
      const bool was_full_sales = previous == Routing::kFullSales;
      return s.expansion_potential > enter || (was_full_sales && s.expansion_potential > stay)
                 ? Routing::kFullSales
                 : Routing::kPlsAssist;
    }
  }
  return Routing::kNone;
}

namespace {

/// Whether a trait equals a rule's value (lower-case text): a string as the same text, a
/// boolean as "true" / "false", a number as the number the text holds ("3", "3.0", "1e3").
bool trait_equals(const std::variant<std::string, double, bool>& trait, const std::string& value) {
  if (const auto* str = std::get_if<std::string>(&trait)) return *str == value;
  if (const auto* b = std::get_if<bool>(&trait)) return value == (*b ? "true" : "false");
  double v = 0;
  const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
  return ec == std::errc() && end == value.data() + value.size() && v == std::get<double>(trait);
}

double fit_of(const Model& model, const AccountState& a) {
  double matched = 0.0, possible = 0.0;
  for (const FitRule& r : model.config().fit_rules) {
    if (r.weight > 0) possible += r.weight;
    const Trait* t = find_trait(a, r.trait);
    if (t == nullptr) continue;
    const auto* num = std::get_if<double>(&t->value);
    bool hit = false;
    switch (r.op) {
      case FitOp::kExists:
        hit = true;
        break;
      case FitOp::kEquals:
      case FitOp::kIn:
        hit = std::any_of(r.values.begin(), r.values.end(),
                          [&t](const std::string& v) { return trait_equals(t->value, v); });
        break;
      case FitOp::kBetween:
        hit = num && *num >= r.min && *num <= r.max;
        break;
      case FitOp::kAtLeast:
        hit = num && *num >= r.min;
        break;
      case FitOp::kAtMost:
        hit = num && *num <= r.max;
        break;
    }
    if (hit) matched += r.weight;
  }
  return possible > 0 ? std::clamp(matched / possible, 0.0, 1.0) : 0.0;
}

struct Parts {
  double users = 0, departments = 0, assets = 0;      // normalised breadth parts (0..1)
  std::array<double, kFabricCategoryCount> fabric{};  // share_c * saturation_c, sums to fabric
};

SeatMetrics seat_metrics(const Model& model, const AccountState& a, const Aggregates& g,
                         Day today) {
  SeatMetrics m;
  const double provisioned =
      a.seat_snapshot_seen ? a.seats : static_cast<double>(a.known_users) + a.seats;
  m.active_users = g.active_users;
  m.provisioned_seats = std::max(provisioned, static_cast<double>(g.active_users));
  m.fill_rate = m.provisioned_seats > 0 ? g.active_users / m.provisioned_seats : 0.0;
  const Day from = window_start(today, model.config().seats.velocity_window_days);
  for (const auto& d : a.seat_deltas)
    if (d.day >= from) m.seat_velocity += d.delta;
  m.seat_limit = a.seat_limit;
  m.seat_limit_proximity = a.seat_limit > 0 ? g.active_users / a.seat_limit : 0.0;
  return m;
}

constexpr std::size_t kDriverCount = 5 + kFabricCategoryCount;

/// The three largest contributions (ties by name), skipping those that round to nothing.
std::vector<Driver> top_drivers(std::array<Driver, kDriverCount>& all) {
  auto larger = [](const Driver& x, const Driver& y) {
    return x.points != y.points ? x.points > y.points : x.name < y.name;
  };
  std::partial_sort(all.begin(), all.begin() + 3, all.end(), larger);
  std::vector<Driver> top;
  top.reserve(3);
  for (std::size_t i = 0; i < 3; ++i)
    if (all[i].points > 0.005) top.push_back(all[i]);
  return top;
}

constexpr std::array<std::string_view, kFabricCategoryCount> kFabricDriverNames = {
    "fabric.provisioning",  "fabric.administration", "fabric.commercial_intent",
    "fabric.collaboration", "fabric.shared_asset",   "fabric.breadth_expansion"};

}  // namespace

void refresh_trait_derived(const Model& model, AccountState& a) {
  a.fit = fit_of(model, a);
  a.segment = -1;
  const auto employees = numeric_trait(a, "employees");
  if (!employees) return;
  // A head count in whole people: 99.5 is 99, not a gap between "0-99" and "100-999".
  const double people = std::floor(*employees);
  const auto& segments = model.config().decay.segments;
  for (std::size_t i = 0; i < segments.size(); ++i) {
    if (people >= segments[i].min_employees && people <= segments[i].max_employees) {
      a.segment = static_cast<std::int32_t>(i);
      return;
    }
  }
}

double user_engagement(const Model& model, const UserState& user) {
  const auto& p = model.config().engagement;
  const double usage = user.usage.at(user.last_active, days_ms(p.half_life_days));
  return 1.0 - std::exp(-usage / p.scale);
}

namespace {

/// role_weight() for a user whose engagement the caller has already computed.
double role_weight_at(const Model& model, const UserState& user, double engagement,
                      Role* effective_role) {
  const auto& r = model.config().roles;
  Role role = user.explicit_role;
  if (role == Role::kUnknown) {
    if (user.did_admin_action)
      role = Role::kAdmin;
    else if (engagement >= r.champion_engagement)
      role = Role::kChampion;
    else
      role = Role::kMember;
  }
  if (effective_role) *effective_role = role;
  switch (role) {
    case Role::kAdmin:
      return r.admin;
    case Role::kBillingOwner:
      return r.billing_owner;
    case Role::kChampion:
      return r.champion;
    case Role::kMember:
    case Role::kUnknown:
      break;
  }
  return r.member;
}

}  // namespace

double role_weight(const Model& model, const UserState& user, Role* effective_role) {
  return role_weight_at(model, user, user_engagement(model, user), effective_role);
}

namespace {

/// evaluate() with the drivers optional: publishing a transition needs them, checking whether
/// one happened (every event) does not.
Score evaluate_impl(const Model& model, const AccountState& a, TimeMs now, bool with_drivers) {
  const ModelConfig& c = model.config();
  now = std::max(now, a.clock);
  const Day today = day_of(now);
  const Aggregates g = aggregate(model, a, today);
  Score s;
  s.seats = seat_metrics(model, a, g, today);
  s.active_departments = g.departments;
  const SegmentRule* segment = segment_of(model, a);
  s.segment = segment ? std::string_view(segment->name) : std::string_view("default");
  const double hl = account_half_life_ms(model, a);

  // Depth: role-weighted average engagement; idle provisioned seats weigh in at 0.2 with 0.
  const double idle = s.seats.provisioned_seats - g.active_users;
  const double depth_den = from_fixed(g.weight) + c.roles.invited_inactive * idle;
  s.components.depth =
      depth_den > 0 ? std::clamp(from_fixed(g.weighted_engagement) / depth_den, 0.0, 1.0) : 0;

  Parts p;
  const Model::Derived& k = model.derived();
  // At or over a cap the share is exactly 1: the logarithm is skipped.
  p.users = g.active_users >= c.breadth.user_cap
                ? 1.0
                : std::min(1.0, std::log1p(g.active_users) / k.log1p_user_cap);
  p.departments = std::min(1.0, g.departments / c.breadth.department_target);
  const auto assets = static_cast<double>(a.shared_assets);
  p.assets =
      assets >= c.breadth.asset_cap ? 1.0 : std::min(1.0, std::log1p(assets) / k.log1p_asset_cap);
  s.components.breadth = c.breadth.users_weight * p.users +
                         c.breadth.departments_weight * p.departments +
                         c.breadth.assets_weight * p.assets;

  if (a.fabric_as_of != kNoTime) {
    const double f = decay_factor(a.last_activity - a.fabric_as_of, hl);
    for (std::size_t i = 0; i < kFabricCategoryCount; ++i) {
      if (a.fabric[i] == 0.0) continue;
      p.fabric[i] = k.fabric_share[i] * (1.0 - std::exp(-a.fabric[i] * f / c.fabric.scale));
      s.components.fabric += p.fabric[i];
    }
  }
  s.components.fit = a.fit;

  s.decay = a.last_activity == kNoTime ? 1.0 : decay_factor(now - a.last_activity, hl);
  const auto& w = c.weights;
  const double behaviour = 100.0 * s.decay;
  s.score =
      std::clamp(behaviour * behavioural_share(w, s.components) + 100.0 * w.fit * s.components.fit,
                 0.0, 100.0);

  if (with_drivers) {
    std::array<Driver, kDriverCount> drivers = {{
        {"breadth.active_users", behaviour * w.breadth * c.breadth.users_weight * p.users},
        {"breadth.departments",
         behaviour * w.breadth * c.breadth.departments_weight * p.departments},
        {"breadth.shared_assets", behaviour * w.breadth * c.breadth.assets_weight * p.assets},
        {"depth", behaviour * w.depth * s.components.depth},
        {"fit", 100.0 * w.fit * s.components.fit},
    }};
    for (std::size_t i = 0; i < kFabricCategoryCount; ++i)
      drivers[5 + i] = {kFabricDriverNames[i], behaviour * w.fabric * p.fabric[i]};
    s.drivers = top_drivers(drivers);
  }

  s.single_user_activation = g.active_users == 1 && s.seats.provisioned_seats >= 2;
  s.band = band_with_hysteresis(c.bands, s.score, a.band);
  if (s.band < a.band && s.decay < 1.0 && now < silence_grace_end(model, a)) {
    // Within the grace the band is judged on the score before decay: a drop that decay
    // causes waits for the grace to end; one the components cause (a user leaving the
    // active window, more idle seats, a plan's fit) does not, down to the band the undecayed
    // score gives. The grace only holds a band, never raises one: the published (decayed)
    // score is below the band's edge.
    const double undecayed = std::clamp(
        100.0 * (behavioural_share(w, s.components) + w.fit * s.components.fit), 0.0, 100.0);
    s.band = std::max(s.band, std::min(a.band, band_with_hysteresis(c.bands, undecayed, a.band)));
  }
  if (s.single_user_activation) s.band = std::min(s.band, Band::kNurture);
  s.expansion_potential =
      std::max(s.components.breadth, std::min(1.0, s.seats.seat_limit_proximity));
  s.routing = route(c, s, a.routing);
  s.pattern = classify_seats(c.seats, s.seats, a.pattern);
  return s;
}

}  // namespace

Score evaluate(const Model& model, const AccountState& a, TimeMs now) {
  return evaluate_impl(model, a, now, true);
}

namespace {

/// Time at which decay alone takes the score below the lower edge of the published band.
TimeMs decay_crossing(const Model& model, const AccountState& a, const Score& s) {
  const ModelConfig& c = model.config();
  if (a.band == Band::kCold || a.last_activity == kNoTime) return kNever;
  const double lower = threshold_of(c.bands, a.band) - c.bands.hysteresis;
  const double fit_points = 100.0 * c.weights.fit * s.components.fit;
  const double behaviour = 100.0 * behavioural_share(c.weights, s.components);
  if (lower <= fit_points || behaviour <= 0) return kNever;  // fit alone holds the band
  const double ratio = behaviour / (lower - fit_points);
  // Below the edge even without decay (the evaluation has dropped the band already): due at
  // once, but never inside the grace, where a rounding difference between this and the
  // evaluation could make it fire every millisecond until the grace ends.
  if (ratio <= 1.0) return std::max(a.last_activity, silence_grace_end(model, a));
  const double dt = account_half_life_ms(model, a) * std::log2(ratio);
  if (dt > 3.0e12) return kNever;  // ~95 years: treat as never
  // Decay alone lowers no band before the silence grace ends (evaluate_impl).
  return std::max(a.last_activity + static_cast<TimeMs>(std::ceil(dt)) + 1,
                  silence_grace_end(model, a));
}

TimeMs next_timer(const Model& model, const AccountState& a, const Score& s, TimeMs now) {
  TimeMs t = kNever;
  if (!a.buckets.empty())
    t = std::min(t,
                 start_of_day(a.buckets.front().day + model.config().activity.active_window_days));
  if (!a.seat_deltas.empty())
    t = std::min(
        t, start_of_day(a.seat_deltas.front().day + model.config().seats.velocity_window_days));
  const TimeMs crossing = decay_crossing(model, a, s);
  if (crossing != kNever) t = std::min(t, std::max(crossing, now + 1));
  return t;
}

/// Evaluates at `now` and publishes band and pattern transitions as signals.
void publish(const Model& model, AccountState& a, TimeMs now, Outcome& out) {
  Score s = evaluate_impl(model, a, now, false);
  const Band previous = a.band;
  const Pattern previous_pattern = a.pattern;
  const std::optional<Routing> previous_routing = a.routing;
  const bool band_changed = s.band != previous;
  const bool pattern_entered = s.pattern != previous_pattern && s.pattern != Pattern::kNone;
  // A band change's threshold_crossed carries its routing already. A cold account's routing
  // (none, or enablement while one user is active) is no sales motion: the scores show it.
  const bool routing_changed = !band_changed && s.band != Band::kCold &&
                               previous_routing.has_value() && s.routing != *previous_routing;
  // Drivers are computed only for what is published; most events publish nothing.
  if (band_changed || pattern_entered || routing_changed) s = evaluate_impl(model, a, now, true);
  a.clock = now;
  a.band = s.band;
  a.pattern = s.pattern;
  a.routing = s.routing;
  out.next_timer = next_timer(model, a, s, now);
  if (band_changed)
    out.signals.push_back(
        Signal{SignalKind::kThresholdCrossed, now, s, previous, Routing::kNone, {}});
  if (pattern_entered)
    out.signals.push_back(Signal{SignalKind::kSeatExpansion, now, s, previous, Routing::kNone, {}});
  if (routing_changed)
    out.signals.push_back(
        Signal{SignalKind::kRoutingChanged, now, std::move(s), previous, *previous_routing, {}});
}

/// Moves the user's contribution to the bucket of its last activity (or out of the window).
void rebook(const Model& model, AccountState& a, UserState& u, Day today, TimeMs now,
            Outcome& out) {
  Booking next;
  const Day from = window_start(today, model.config().activity.active_window_days);
  if (u.last_active != kNoTime && day_of(u.last_active) >= std::max(from, a.expired_before)) {
    next.active = true;
    next.day = day_of(u.last_active);
    const double engagement = user_engagement(model, u);
    const double weight = role_weight_at(model, u, engagement, nullptr);
    next.weight = to_fixed(weight);
    next.weighted_engagement = to_fixed(weight * engagement);
    if (!u.department.empty()) {
      bool is_new = false;
      next.department = department_index(model, a, u.department, u.booking.department, is_new);
      if (is_new) {
        add_fabric(a, FabricCategory::kBreadthExpansion, 1.0, u.last_active,
                   account_half_life_ms(model, a));
        Signal sig;
        sig.kind = SignalKind::kBreadthExpansion;
        sig.event_time = now;
        sig.department = u.department;
        out.signals.push_back(std::move(sig));  // score filled in after publish
      }
    }
  }
  unbook(a, u.booking);
  book(a, next);
  u.booking = next;
}

void apply_track(const Model& model, AccountState& a, UserState& u, const Event& e, Day today) {
  const EventRule* rule = e.rule;
  const EventKind kind = rule ? rule->kind : EventKind::kUsage;
  const double hl = account_half_life_ms(model, a);
  u.last_active = std::max(u.last_active, e.timestamp);
  a.last_activity = std::max(a.last_activity, e.timestamp);
  if (kind == EventKind::kUsage) {
    const double w = rule ? rule->weight : model.config().default_usage_weight;
    u.usage.add(w, e.timestamp, days_ms(model.config().engagement.half_life_days));
    return;
  }
  if (rule->infers_admin) u.did_admin_action = true;
  // A quantity of 0 (`Seat Added {seats: 0}`) provisions nothing: no fabric, no seats.
  if (e.quantity <= 0) return;
  const double weight = rule->weight * role_weight(model, u) * (1.0 + std::log(e.quantity));
  if (weight > 0) add_fabric(a, category_of(kind), weight, e.timestamp, hl);
  if (rule->seat_delta != 0.0)
    change_seats(model, a, rule->seat_delta * e.quantity, e.timestamp, today);
  if (kind == EventKind::kSharedAsset) ++a.shared_assets;
}

}  // namespace

namespace {

/// A user new to the account. Before a seats snapshot, provisioned seats are the known users
/// plus the net provisioning: a newcomer takes up a seat provisioned and not yet taken (the
/// invite that brought them, a seat bought) rather than adding one, so that an invitee is not
/// counted twice, once invited and once known.
void take_a_seat(AccountState& a) {
  ++a.known_users;
  if (!a.seat_snapshot_seen && a.seats > 0) a.seats = std::max(0.0, a.seats - 1.0);
}

}  // namespace

Outcome apply_event(const Model& model, AccountState& account, UserState& user, bool user_is_new,
                    const Event& event, TimeMs now) {
  Outcome out;
  now = std::max({now, account.clock, event.timestamp});
  const Day today = day_of(now);
  expire(model, account, today);
  if (user_is_new) take_a_seat(account);
  // Each trait follows its own latest call, whatever the arrival order.
  if (event.role) {
    const Role role = parse_role(*event.role);
    if (later_call_wins(event.timestamp, role, user.role_as_of, user.explicit_role)) {
      user.role_as_of = event.timestamp;
      user.explicit_role = role;
    }
  }
  if (event.department &&
      later_call_wins(event.timestamp, *event.department, user.department_as_of, user.department)) {
    user.department_as_of = event.timestamp;
    user.department = *event.department;
  }
  if (event.type == CallType::kGroup) apply_account_traits(model, account, event, today);
  if (event.type == CallType::kTrack) apply_track(model, account, user, event, today);
  rebook(model, account, user, today, now, out);
  const std::size_t breadth_signals = out.signals.size();
  publish(model, account, now, out);
  // Breadth-expansion signals carry the published score that includes their own department.
  if (breadth_signals > 0) {
    const Score published = evaluate(model, account, now);
    for (std::size_t i = 0; i < breadth_signals; ++i) out.signals[i].score = published;
  }
  return out;
}

Outcome advance(const Model& model, AccountState& account, TimeMs now) {
  Outcome out;
  now = std::max(now, account.clock);
  expire(model, account, day_of(now));
  publish(model, account, now, out);
  return out;
}

}  // namespace pqa::rollup
