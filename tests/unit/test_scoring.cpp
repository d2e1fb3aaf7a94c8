// Each formula of docs/scoring.md, timers, hysteresis, routing and seat patterns.
#include <catch2/catch.hpp>
#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include "harness_send.h"

using namespace pqa;
using namespace pqa::test;
using rollup::Band;
using rollup::Pattern;
using rollup::Routing;

namespace {
const std::string kDept = R"({"department":"engineering"})";
double eng(double usage) {
  return 1.0 - std::exp(-usage / 10.0);
}

/// n usage events of weight 1 ("Dashboard Viewed") at time t.
void use(Harness& h, const std::string& user, int n, TimeMs t, const std::string& account = "") {
  for (int i = 0; i < n; ++i) h.send(track(user, "Dashboard Viewed", t, "{}", account));
}
}  // namespace

TEST_CASE("depth is the role-weighted average engagement of active users", "[scoring][depth]") {
  Harness h;
  h.send(group("admin", "a", kT0));
  h.send(group("member", "a", kT0));
  h.send(identify("admin", kT0, R"({"role":"admin"})"));
  use(h, "admin", 10, kT0);
  use(h, "member", 5, kT0);
  const double expected = (1.5 * eng(10) + 1.0 * eng(5)) / (1.5 + 1.0);
  CHECK(h.score_now("a").components.depth == Approx(expected).epsilon(1e-9));
}

TEST_CASE("idle provisioned seats weigh in at the invited-but-inactive weight",
          "[scoring][depth]") {
  Harness h;
  h.send(group("u", "a", kT0, R"({"seats":6})"));
  use(h, "u", 10, kT0);
  // One active member and five idle seats at 0.2 each.
  CHECK(h.score_now("a").components.depth == Approx(eng(10) / (1.0 + 0.2 * 5)).epsilon(1e-9));
}

TEST_CASE("breadth combines users, departments and shared assets", "[scoring][breadth]") {
  Harness h;
  for (const char* u : {"u1", "u2", "u3"}) h.send(group(u, "a", kT0));
  h.send(identify("u1", kT0, R"({"department":"sales"})"));
  h.send(identify("u2", kT0, R"({"department":"finance"})"));
  use(h, "u1", 1, kT0);
  use(h, "u2", 1, kT0);
  use(h, "u3", 1, kT0);  // no department: counts as a user, not a department
  h.send(track("u1", "Workspace Created", kT0));
  const double expected =
      0.3 * std::log(4.0) / std::log(11.0) + 0.5 * 2.0 / 4.0 + 0.2 * std::log(2.0) / std::log(11.0);
  CHECK(h.score_now("a").components.breadth == Approx(expected).epsilon(1e-9));
  CHECK(h.score_now("a").active_departments == 2);
}

TEST_CASE("active users are capped so head count cannot run away", "[scoring][breadth]") {
  Harness h;
  for (int i = 0; i < 40; ++i) {
    const std::string u = "u" + std::to_string(i);
    h.send(group(u, "a", kT0));
    use(h, u, 1, kT0);
  }
  CHECK(h.score_now("a").components.breadth == Approx(0.3));  // users term maxed, nothing else
}

TEST_CASE("fabric saturates per category", "[scoring][fabric]") {
  Harness h;
  h.send(group("u", "a", kT0));
  for (int i = 0; i < 200; ++i) h.send(track("u", "Comment Added", kT0));
  const auto s = h.score_now("a");
  // Collaboration's share is 3/19 however many comments; breadth expansion adds nothing here.
  CHECK(s.components.fabric == Approx(3.0 / 19.0).epsilon(1e-6));
  h.send(track("u", "SSO Configured", kT0));  // the user becomes an inferred admin: 1.5
  CHECK(h.score_now("a").components.fabric ==
        Approx(3.0 / 19.0 + 3.0 / 19.0 * (1 - std::exp(-1.5 / 3.0))).epsilon(1e-6));
}

TEST_CASE("fit adds matched rule weights over all positive weights", "[scoring][fit]") {
  auto config = shipped_model_config();
  config.fit_rules.push_back({"industry", rollup::FitOp::kEquals, {"gambling"}, 0, 0, -0.5});
  config.fit_rules.push_back({"soc2", rollup::FitOp::kExists, {}, 0, 0, 0.2});
  config.fit_rules.push_back({"seat_limit", rollup::FitOp::kAtLeast, {}, 100, 0, 0.1});
  Harness h(config);
  h.send(group("u", "a", kT0, R"({"employees":40,"industry":"Software","plan":"team"})"));
  CHECK(h.score_now("a").components.fit == Approx((0.3 + 0.3) / 1.3));
  h.send(group("u", "a", kT0 + 1, R"({"employees":60,"soc2":true,"seat_limit":100})"));
  CHECK(h.score_now("a").components.fit == Approx(1.0));
  h.send(group("u", "b", kT0 + 2, R"({"industry":"gambling"})"));
  CHECK(h.score_now("b").components.fit == 0.0);  // clamped at 0
}

TEST_CASE("a provisioning event of quantity 0 adds neither fabric nor seats", "[scoring][fabric]") {
  Harness h;
  h.send(group("u", "a", kT0));
  h.send(track("u", "Seat Added", kT0 + 1, R"({"seats":0})"));
  h.send(track("u", "Bulk Invite Sent", kT0 + 2, R"({"count":0})"));
  const auto provisioning = static_cast<int>(rollup::FabricCategory::kProvisioning);
  CHECK(h.state("a").fabric[provisioning] == 0.0);
  CHECK(h.score_now("a").seats.seat_velocity == 0);
  h.send(track("u", "Seat Added", kT0 + 3, R"({"seats":1})"));
  CHECK(h.state("a").fabric[provisioning] == Approx(1.0));
}

TEST_CASE("equals and in match boolean and numeric traits too", "[scoring][fit]") {
  // Group traits arrive as JSON types: `"sso_enabled": true`, `"tier": 3`. A rule's values
  // are text in the YAML; each is compared as the trait's own type.
  auto config = shipped_model_config();
  config.fit_rules = {{"sso_enabled", rollup::FitOp::kEquals, {"true"}, 0, 0, 1.0},
                      {"tier", rollup::FitOp::kIn, {"2", "3"}, 0, 0, 1.0}};
  Harness h(config);
  h.send(group("u", "a", kT0, R"({"sso_enabled":true,"tier":3})"));
  CHECK(h.score_now("a").components.fit == 1.0);
  h.send(group("u", "b", kT0, R"({"sso_enabled":false,"tier":3.5})"));
  CHECK(h.score_now("b").components.fit == 0.0);
  h.send(group("u", "c", kT0, R"({"sso_enabled":"true","tier":"2"})"));  // text: as text
  CHECK(h.score_now("c").components.fit == 1.0);
}

TEST_CASE("the composite is the weighted sum of components", "[scoring][composite]") {
  Harness h;
  h.send(group("u1", "a", kT0, R"({"employees":250,"industry":"fintech"})"));
  h.send(identify("u1", kT0, kDept));
  use(h, "u1", 7, kT0);
  h.send(track("u1", "Billing Page Viewed", kT0));
  const auto s = h.score_now("a");
  const auto& c = s.components;
  CHECK(s.score ==
        Approx(100 * (0.35 * c.breadth + 0.25 * c.depth + 0.25 * c.fabric + 0.15 * c.fit)));
  double driver_points = 0;
  for (const auto& d : s.drivers) driver_points += d.points;
  CHECK(driver_points <= s.score + 1e-9);
  REQUIRE(s.drivers.size() == 3);
  CHECK(s.drivers[0].points >= s.drivers[1].points);
  CHECK(s.drivers[1].points >= s.drivers[2].points);
  // The named terms (docs/scoring.md section 7): depth 25 * 0.503 = 12.6, fit 15 * 0.7 = 10.5,
  // breadth.departments 35 * 0.5 * 1/4 = 4.4 lead breadth.active_users 35 * 0.3 * ln2/ln11 =
  // 3.0 and fabric.commercial_intent 25 * 4/19 * (1 - e^-0.5) = 2.1.
  CHECK(s.drivers[0].name == "depth");
  CHECK(s.drivers[0].points == Approx(100 * 0.25 * c.depth).epsilon(1e-12));
  CHECK(s.drivers[1].name == "fit");
  CHECK(s.drivers[1].points == Approx(100 * 0.15 * 0.7).epsilon(1e-12));
  CHECK(s.drivers[2].name == "breadth.departments");
  CHECK(s.drivers[2].points == Approx(100 * 0.35 * 0.5 / 4).epsilon(1e-12));
}

TEST_CASE("bands move up at thresholds and down only past the hysteresis", "[scoring][bands]") {
  const rollup::BandParams p;  // 40 / 60 / 80, hysteresis 3
  CHECK(rollup::band_with_hysteresis(p, 39.99, Band::kCold) == Band::kCold);
  CHECK(rollup::band_with_hysteresis(p, 60.0, Band::kCold) == Band::kQualified);
  CHECK(rollup::band_with_hysteresis(p, 85.0, Band::kNurture) == Band::kHot);
  CHECK(rollup::band_with_hysteresis(p, 57.5, Band::kQualified) == Band::kQualified);
  CHECK(rollup::band_with_hysteresis(p, 56.9, Band::kQualified) == Band::kNurture);
  CHECK(rollup::band_with_hysteresis(p, 77.0, Band::kHot) == Band::kHot);
  CHECK(rollup::band_with_hysteresis(p, 58.0, Band::kHot) == Band::kQualified);
  CHECK(rollup::band_with_hysteresis(p, 10.0, Band::kHot) == Band::kCold);
}

TEST_CASE("routing follows seed 002", "[scoring][routing]") {
  const auto config = shipped_model_config();
  rollup::Score s;
  s.band = Band::kCold;
  CHECK(rollup::route(config, s) == Routing::kNone);
  s.band = Band::kNurture;
  CHECK(rollup::route(config, s) == Routing::kSelfServe);
  s.band = Band::kQualified;
  CHECK(rollup::route(config, s) == Routing::kPlsAssist);
  s.band = Band::kHot;
  s.expansion_potential = 0.5;
  CHECK(rollup::route(config, s) == Routing::kPlsAssist);
  s.expansion_potential = 0.8;  // seed 002: "expansion potential above 20" (of 25)
  CHECK(rollup::route(config, s) == Routing::kPlsAssist);
  s.expansion_potential = 0.84;
  CHECK(rollup::route(config, s) == Routing::kFullSales);
  s.single_user_activation = true;
  CHECK(rollup::route(config, s) == Routing::kEnablement);
}

namespace {

/// Seat metrics as classify_seats reads them.
rollup::SeatMetrics seat_metrics(double fill, double velocity, double proximity, double limit) {
  rollup::SeatMetrics x;
  x.fill_rate = fill;
  x.seat_velocity = velocity;
  x.seat_limit_proximity = proximity;
  x.seat_limit = limit;
  return x;
}

}  // namespace

TEST_CASE("seat patterns follow seed 000's table", "[scoring][seats]") {
  const rollup::SeatParams p;
  const auto m = seat_metrics;
  CHECK(rollup::classify_seats(p, m(0.9, 5, 0.8, 50)) == Pattern::kHealthyExpansion);
  CHECK(rollup::classify_seats(p, m(0.9, 5, 0, 0)) == Pattern::kHealthyExpansion);
  CHECK(rollup::classify_seats(p, m(0.2, 5, 0.2, 50)) == Pattern::kStalledProvisioning);
  CHECK(rollup::classify_seats(p, m(0.95, 0, 0.98, 50)) == Pattern::kSaturated);
  CHECK(rollup::classify_seats(p, m(0.5, -3, 0.5, 50)) == Pattern::kContracting);
  // Idle seats removed, the rest well used: right-sizing, not churn risk.
  CHECK(rollup::classify_seats(p, m(1.0, -10, 0.5, 20)) == Pattern::kNone);
  CHECK(rollup::classify_seats(p, m(0.5, 0, 0.5, 50)) == Pattern::kNone);
  CHECK(rollup::classify_seats(p, m(0.9, 5, 0.3, 50)) == Pattern::kNone);  // far from limit
}

TEST_CASE("a seat pattern is kept until its metrics are pattern_hysteresis past the thresholds",
          "[scoring][seats]") {
  const rollup::SeatParams p;  // fill 0.6 / 0.4, proximity 0.7 / 0.95, hysteresis 0.1
  const auto m = seat_metrics;
  using rollup::classify_seats;
  // Held: kept with 0.1 of slack; not held: the plain thresholds.
  CHECK(classify_seats(p, m(0.55, 2, 0, 0), Pattern::kHealthyExpansion) ==
        Pattern::kHealthyExpansion);
  CHECK(classify_seats(p, m(0.55, 2, 0, 0)) == Pattern::kNone);
  CHECK(classify_seats(p, m(0.49, 2, 0, 0), Pattern::kHealthyExpansion) == Pattern::kNone);
  CHECK(classify_seats(p, m(0.9, 2, 0.65, 20), Pattern::kHealthyExpansion) ==
        Pattern::kHealthyExpansion);
  CHECK(classify_seats(p, m(0.45, 2, 0.2, 50), Pattern::kStalledProvisioning) ==
        Pattern::kStalledProvisioning);
  CHECK(classify_seats(p, m(0.45, 2, 0.2, 50)) == Pattern::kNone);
  CHECK(classify_seats(p, m(0.9, 0, 0.9, 20), Pattern::kSaturated) == Pattern::kSaturated);
  CHECK(classify_seats(p, m(0.9, 0, 0.9, 20)) == Pattern::kNone);
  CHECK(classify_seats(p, m(0.65, -2, 0.5, 20), Pattern::kContracting) == Pattern::kContracting);
  CHECK(classify_seats(p, m(0.65, -2, 0.5, 20)) == Pattern::kNone);
  // The sign of the velocity is not relaxed: growth that stopped ends an expansion.
  CHECK(classify_seats(p, m(0.9, 0, 0, 0), Pattern::kHealthyExpansion) == Pattern::kNone);
}

TEST_CASE("a fill hovering at a pattern's threshold announces the pattern once",
          "[scoring][seats]") {
  // Announcements of healthy expansion as the fill goes 0.6, 0.545, 0.6.
  const auto announcements = [](rollup::ModelConfig config) {
    Harness h(std::move(config));
    h.send(group("a0", "acct", kT0, R"({"seats":5})"));
    for (int i = 0; i < 5; ++i) {
      const std::string u = "u" + std::to_string(i);
      h.send(group(u, "acct", kT0));
      h.send(track(u, "Report Created", kT0));
    }
    // Five seats added: 10 seats, 6 users busy (a0 and five more; fill 0.6), growing, no
    // limit known.
    h.send(track("a0", "Seat Added", kT0 + kHour, R"({"seats":5})"));
    REQUIRE(h.score_now("acct").pattern == Pattern::kHealthyExpansion);
    // One seat more (fill 0.545), then one less again (0.6).
    h.send(group("a0", "acct", kT0 + 2 * kHour, R"({"seats":11})"));
    h.send(group("a0", "acct", kT0 + 3 * kHour, R"({"seats":10})"));
    CHECK(h.score_now("acct").pattern == Pattern::kHealthyExpansion);
    return h.sink.of_kind(rollup::SignalKind::kSeatExpansion).size();
  };
  CHECK(announcements(shipped_model_config()) == 1);  // kept throughout
  auto no_hysteresis = shipped_model_config();
  no_hysteresis.seats.pattern_hysteresis = 0;
  CHECK(announcements(no_hysteresis) == 2);  // left at 0.545, announced again at 0.6
}

TEST_CASE("seat metrics come from snapshots and provisioning events", "[scoring][seats]") {
  Harness h;
  h.send(group("admin", "a", kT0, R"({"seats":10,"seat_limit":12})"));
  h.send(track("admin", "Seat Added", kT0 + kHour, R"({"seats":2})"));
  h.send(track("admin", "Bulk Invite Sent", kT0 + kHour, R"({"count":3})"));
  h.send(track("admin", "Seat Removed", kT0 + kHour, R"({"seats":1})"));
  const auto s = h.score_now("a").seats;
  CHECK(s.provisioned_seats == 14);
  CHECK(s.seat_velocity == 4);  // the first snapshot is not growth
  CHECK(s.active_users == 1);
  CHECK(s.fill_rate == Approx(1.0 / 14));
  CHECK(s.seat_limit_proximity == Approx(1.0 / 12));
  // The velocity window (14 days) forgets the additions on a timer.
  h.processor.advance_to(kT0 + 15 * kDay);
  CHECK(h.score_now("a").seats.seat_velocity == 0);
}

TEST_CASE("users leave the active window on a timer", "[scoring][timers]") {
  Harness h;
  h.send(group("u1", "a", kT0));
  h.send(group("u2", "a", kT0));
  use(h, "u1", 3, kT0);
  use(h, "u2", 3, kT0 + 10 * kDay);
  CHECK(h.score_now("a").seats.active_users == 2);
  const auto fired_before = h.processor.stats().timers_fired;
  h.processor.advance_to(kT0 + 28 * kDay);  // start of day(t0) + 28: u1 leaves
  CHECK(h.processor.stats().timers_fired > fired_before);
  CHECK(h.state("a").buckets.size() == 1);
  CHECK(h.score_now("a").seats.active_users == 1);
  h.processor.advance_to(kT0 + 38 * kDay);
  CHECK(h.score_now("a").seats.active_users == 0);
  CHECK(h.state("a").buckets.empty());
}

TEST_CASE("a returning user moves to its new activity day", "[scoring][timers]") {
  Harness h;
  h.send(group("u", "a", kT0));
  use(h, "u", 1, kT0);
  use(h, "u", 1, kT0 + 20 * kDay);
  h.processor.advance_to(kT0 + 30 * kDay);
  CHECK(h.score_now("a").seats.active_users == 1);  // still active: last seen on day 20
  CHECK(h.state("a").buckets.size() == 1);
}

TEST_CASE("a late event still counts and matches in-order processing", "[scoring][late]") {
  auto run = [](bool late) {
    Harness h;
    h.send(group("u1", "a", kT0));
    h.send(group("u2", "a", kT0));
    h.send(identify("u1", kT0, R"({"role":"admin","department":"ops"})"));
    h.send(identify("u2", kT0, R"({"department":"sales"})"));
    std::vector<std::string> events;
    for (int i = 0; i < 24; ++i) {
      events.push_back(track("u1", "Report Created", kT0 + i * kHour));
      events.push_back(track("u2", "Comment Added", kT0 + i * kHour + 60'000));
      events.push_back(track("u1", "Billing Page Viewed", kT0 + i * kHour + 120'000));
    }
    if (late) std::reverse(events.begin() + 10, events.end() - 1);  // most arrive late
    h.send_all(events);
    return h.score(std::string("a"), kT0 + 2 * kDay);
  };
  const auto in_order = run(false);
  const auto shuffled = run(true);
  CHECK(shuffled.score == Approx(in_order.score).epsilon(1e-9));
  CHECK(shuffled.components.depth == Approx(in_order.components.depth).epsilon(1e-9));
  CHECK(shuffled.components.fabric == Approx(in_order.components.fabric).epsilon(1e-9));
  CHECK(shuffled.components.breadth == Approx(in_order.components.breadth).epsilon(1e-9));
}

TEST_CASE("an event older than the active window counts but does not activate", "[scoring][late]") {
  Harness h;
  h.send(group("u1", "a", kT0 + 40 * kDay));
  use(h, "u1", 1, kT0 + 40 * kDay);
  h.send(group("u2", "a", kT0 + 40 * kDay));
  use(h, "u2", 1, kT0);  // 40 days late
  CHECK(h.score_now("a").seats.active_users == 1);
}

TEST_CASE("segments choose the decay half-life", "[scoring][decay]") {
  auto config = shipped_model_config();
  config.decay.segments = {{"smb", 0, 99, 7.0}, {"enterprise", 1000, 1e18, 30.0}};
  Harness h(config);
  h.send(group("u", "small", kT0, R"({"employees":20})"));
  use(h, "u", 5, kT0, "small");
  h.send(group("v", "big", kT0, R"({"employees":5000})"));
  use(h, "v", 5, kT0, "big");
  CHECK(h.score("small", kT0 + 7 * kDay).decay == Approx(0.5));
  CHECK(h.score("small", kT0 + 7 * kDay).segment == "smb");
  CHECK(h.score("big", kT0 + 30 * kDay).decay == Approx(0.5));
  // A head count in whole people: 99.5 falls in "0-99", not between the rules.
  h.send(group("w", "fraction", kT0, R"({"employees":99.5})"));
  use(h, "w", 5, kT0, "fraction");
  CHECK(h.score("fraction", kT0 + 7 * kDay).segment == "smb");
}

TEST_CASE("the shipped segments: smb 10 days, mid-market 14, enterprise 30, default 14",
          "[scoring][decay]") {
  Harness h;
  const std::vector<std::tuple<std::string, std::string, std::string, int>> accounts = {
      {"small", R"({"employees":20})", "smb", 10},
      {"mid", R"({"employees":300})", "mid_market", 14},
      {"big", R"({"employees":5000})", "enterprise", 30},
      {"unknown", "{}", "default", 14},
  };
  for (const auto& [account, traits, segment, days] : accounts) {
    h.send(group(account + "-u", account, kT0, traits));
    use(h, account + "-u", 5, kT0, account);
    const auto later = h.score(account, kT0 + days * kDay);
    CHECK(later.segment == segment);
    CHECK(later.decay == Approx(0.5).epsilon(1e-12));
    CHECK(h.score(account, kT0 + 2 * days * kDay).decay == Approx(0.25).epsilon(1e-12));
  }
}

TEST_CASE("usage decays with a 7-day half-life within a user's engagement", "[scoring][decay]") {
  Harness h;
  h.send(group("u", "a", kT0));
  use(h, "u", 1, kT0);
  use(h, "u", 1, kT0 + 7 * kDay);
  const auto user = h.user("a", "u");
  CHECK(user.usage.value == Approx(1.5).epsilon(1e-12));  // 1 * 2^-1 + 1
  CHECK(rollup::user_engagement(h.model, user) == Approx(eng(1.5)).epsilon(1e-12));
  // Depth sums engagement in fixed point (units of 1e-9).
  CHECK(h.score_now("a").components.depth == Approx(eng(1.5)).margin(2e-9).epsilon(0));
}

TEST_CASE("fabric decays with the account's half-life while the account stays active",
          "[scoring][decay][fabric]") {
  Harness h;  // mid-market: 14 days
  h.send(group("u", "a", kT0, R"({"employees":300})"));
  h.send(identify("u", kT0, R"({"role":"member"})"));
  h.send(track("u", "Comment Added", kT0));
  h.send(track("u", "Comment Added", kT0 + 14 * kDay));
  const auto collaboration = static_cast<int>(rollup::FabricCategory::kCollaboration);
  const auto state = h.state("a");
  CHECK(state.fabric_as_of == kT0 + 14 * kDay);
  CHECK(state.fabric[collaboration] == Approx(1.5).epsilon(1e-12));  // 1 * 2^-1 + 1
  // The fabric component takes it at the account's last activity: share * (1 - e^(-1.5/3)).
  const double share = h.model.derived().fabric_share[collaboration];
  CHECK(h.score_now("a").components.fabric ==
        Approx(share * (1 - std::exp(-1.5 / 3))).epsilon(1e-12));
}

TEST_CASE("roles are inferred from behaviour when no role trait is given", "[scoring][roles]") {
  const rollup::Model model{shipped_model_config()};
  rollup::UserState u;
  rollup::Role role{};
  CHECK(rollup::role_weight(model, u, &role) == 1.0);
  CHECK(role == rollup::Role::kMember);
  u.usage.add(20.0, kT0, 7.0 * kDay);  // engagement 0.86 >= 0.75
  u.last_active = kT0;
  CHECK(rollup::role_weight(model, u, &role) == 1.3);
  CHECK(role == rollup::Role::kChampion);
  u.did_admin_action = true;
  CHECK(rollup::role_weight(model, u, &role) == 1.5);
  u.explicit_role = rollup::Role::kMember;  // an explicit role always wins
  CHECK(rollup::role_weight(model, u, &role) == 1.0);
}

TEST_CASE("before any seat snapshot, provisioning adds to the known users", "[scoring][seats]") {
  Harness h;
  for (int i = 0; i < 30; ++i) h.send(group("u" + std::to_string(i), "a", kT0));
  for (int i = 0; i < 3; ++i) h.send(track("u" + std::to_string(i), "Dashboard Viewed", kT0));
  CHECK(h.score_now("a").seats.provisioned_seats == 30);
  h.send(track("u0", "User Invited", kT0 + 1));
  auto s = h.score_now("a");
  CHECK(s.seats.provisioned_seats == 31);
  CHECK(s.seats.fill_rate == Approx(3.0 / 31));
  CHECK(s.seats.seat_velocity == 1);
  CHECK(s.pattern != Pattern::kHealthyExpansion);
  // The first snapshot replaces the estimate and is not growth.
  h.send(group("u0", "a", kT0 + 2, R"({"seats":40})"));
  s = h.score_now("a");
  CHECK(s.seats.provisioned_seats == 40);
  CHECK(s.seats.seat_velocity == 1);
}

TEST_CASE("before any seat snapshot, an invitee takes up the seat of its invite",
          "[scoring][seats]") {
  // u0 invites nine colleagues, who then join and use the product: ten seats, all filled, not
  // nineteen (nine invites plus ten known users).
  Harness h;
  h.send(group("u0", "a", kT0));
  for (int i = 1; i <= 9; ++i) h.send(track("u0", "User Invited", kT0 + i));
  CHECK(h.score_now("a").seats.provisioned_seats == 10);
  for (int i = 1; i <= 9; ++i) h.send(group("u" + std::to_string(i), "a", kT0 + kHour));
  for (int i = 0; i <= 9; ++i)
    h.send(track("u" + std::to_string(i), "Dashboard Viewed", kT0 + 2 * kHour));
  auto s = h.score_now("a");
  CHECK(s.seats.provisioned_seats == 10);
  CHECK(s.seats.fill_rate == 1.0);
  CHECK(s.seats.seat_velocity == 9);
  // A user who joins without a seat waiting adds one; a removal takes one away.
  h.send(track("u10", "Dashboard Viewed", kT0 + 3 * kHour, "{}", "a"));
  CHECK(h.score_now("a").seats.provisioned_seats == 11);
  h.send(track("u0", "Account Removed User", kT0 + 4 * kHour));
  CHECK(h.score_now("a").seats.provisioned_seats == 11);  // never below the 11 active users
  CHECK(static_cast<double>(h.state("a").known_users) + h.state("a").seats == 10);
}

TEST_CASE("user traits follow the latest call, not the last processed", "[scoring][late]") {
  Harness h;
  h.send(group("u1", "a", kT0));
  h.send(identify("u1", kT0 + 10 * 60'000, R"({"role":"admin","department":"eng"})"));
  h.send(track("u1", "Dashboard Viewed", kT0 + 11 * 60'000));
  h.send(identify("u1", kT0, R"({"role":"member","department":"sales"})"));  // older, late
  const auto breadth = h.sink.of_kind(rollup::SignalKind::kBreadthExpansion);
  REQUIRE(breadth.size() == 1);
  CHECK(breadth[0].signal.department == "eng");
  CHECK(h.user("a", "u1").explicit_role == rollup::Role::kAdmin);
}

TEST_CASE("each user trait follows its own latest call, whatever the arrival order",
          "[scoring][late]") {
  // An identify with role and department, and a later call with the department only: in
  // either arrival order the user is an admin in engineering.
  const std::vector<std::string> calls = {
      identify("u1", kT0 + 1, R"({"role":"admin","department":"sales"})"),
      identify("u1", kT0 + 2, R"({"department":"engineering"})")};
  for (const bool reversed : {false, true}) {
    INFO("reversed: " << reversed);
    Harness h;
    h.send(group("u1", "a", kT0));
    h.send(calls[reversed ? 1 : 0]);
    h.send(calls[reversed ? 0 : 1]);
    h.send(track("u1", "Dashboard Viewed", kT0 + 3));
    const auto user = h.user("a", "u1");
    CHECK(user.explicit_role == rollup::Role::kAdmin);
    CHECK(user.department == "engineering");
  }
}

TEST_CASE("each account trait follows its own latest group call, whatever the arrival order",
          "[scoring][late]") {
  // Group calls that send some traits each: the older one, late, still sets what no later
  // call has set, so fit, segment, seats and the seat limit come out the same.
  const std::vector<std::string> calls = {
      group("u1", "a", kT0 + 1,
            R"({"employees":250,"industry":"software","seats":10,"seat_limit":20})"),
      group("u1", "a", kT0 + 2, R"({"plan":"team","industry":"retail"})")};
  std::vector<rollup::Score> scores;
  for (const bool reversed : {false, true}) {
    Harness h;
    h.send(calls[reversed ? 1 : 0]);
    h.send(calls[reversed ? 0 : 1]);
    use(h, "u1", 3, kT0 + 3);
    scores.push_back(h.score("a", kT0 + kDay));
  }
  for (const auto& s : scores) {
    CHECK(s.components.fit == Approx((0.4 + 0.3) / 1.0));  // employees, plan; not retail
    CHECK(s.segment == "mid_market");
    CHECK(s.seats.provisioned_seats == 10);
    CHECK(s.seats.seat_limit == 20);
  }
  CHECK(scores[0].score == scores[1].score);
}

TEST_CASE("calls of the same time give the same traits in either arrival order",
          "[scoring][late]") {
  // Backfills stamp many calls alike: between two calls of one time the greater value wins
  // (later_call_wins), so neither the account's traits nor the user's depend on which of them
  // was processed first.
  const std::vector<std::string> calls = {
      group("u1", "a", kT0 + 1, R"({"plan":"free","seats":10})"),
      group("u1", "a", kT0 + 1, R"({"plan":"team","seats":12})"),
      identify("u1", kT0 + 2, R"({"role":"member","department":"engineering"})"),
      identify("u1", kT0 + 2, R"({"role":"admin","department":"design"})")};
  std::vector<rollup::Score> scores;
  for (const bool reversed : {false, true}) {
    INFO("reversed: " << reversed);
    Harness h;
    for (int i : reversed ? std::vector<int>{1, 0, 3, 2} : std::vector<int>{0, 1, 2, 3})
      h.send(calls[static_cast<std::size_t>(i)]);
    use(h, "u1", 3, kT0 + 3);
    const auto user = h.user("a", "u1");
    CHECK(user.explicit_role == rollup::Role::kAdmin);  // kAdmin > kMember
    CHECK(user.department == "engineering");            // "engineering" > "design"
    scores.push_back(h.score("a", kT0 + kDay));
    CHECK(scores.back().seats.provisioned_seats == 12);
  }
  CHECK(scores[0].components.fit == scores[1].components.fit);
  CHECK(scores[0].score == scores[1].score);
}

TEST_CASE("a redelivered seat snapshot does not undo the seat changes after it",
          "[scoring][late]") {
  // At-least-once delivery repeats calls: the same snapshot again (same time, same value)
  // changes nothing, where re-applying it would drop the seat added since.
  Harness h;
  const std::string snapshot = group("u1", "a", kT0, R"({"seats":10})");
  h.send(snapshot);
  h.send(track("u1", "Seat Added", kT0 + 60'000));
  h.send(snapshot);
  CHECK(h.score_now("a").seats.provisioned_seats == 11);
}

TEST_CASE("a booking on an expired day is never taken from a new bucket", "[scoring][timers]") {
  // Expire day 0 under a 28-day window, then widen the window to 60 days: day 0 must stay gone.
  auto config = shipped_model_config();
  const rollup::Model narrow(config);
  config.activity.active_window_days = 60;
  const rollup::Model wide(config);
  rollup::AccountState account;
  rollup::UserState y, x;
  rollup::Event e;
  e.type = rollup::CallType::kTrack;
  e.timestamp = kT0;
  (void)rollup::apply_event(narrow, account, y, true, e, kT0);
  (void)rollup::advance(narrow, account, kT0 + 30 * kDay);  // day 0 expires
  REQUIRE(account.buckets.empty());
  (void)rollup::apply_event(wide, account, x, true, e, kT0 + 30 * kDay);  // late, day 0
  CHECK(account.buckets.empty());                                         // not re-created
  e.timestamp = kT0 + 30 * kDay;
  (void)rollup::apply_event(wide, account, y, false, e, kT0 + 30 * kDay);
  REQUIRE(account.buckets.size() == 1);
  CHECK(account.buckets[0].users == 1);
}
