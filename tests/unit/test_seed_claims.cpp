// Every claim of the seeds that the model relies on, one test each, named after the claim.
#include <catch2/catch.hpp>
#include <cmath>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "config_loader.h"
#include "harness_send.h"
#include "state_codec.h"

using namespace pqa;
using namespace pqa::test;
using rollup::Band;
using rollup::SignalKind;

namespace {

void member(Harness& h, const std::string& account, const std::string& user,
            const std::string& traits, int usage_events, TimeMs t = kT0) {
  h.send(group(user, account, t));
  h.send(identify(user, t, traits));
  for (int i = 0; i < usage_events; ++i) h.send(track(user, "Dashboard Viewed", t + i));
}

double engagement_sum(Harness& h, const std::string& account, int users) {
  double sum = 0;
  for (int i = 0; i < users; ++i)
    sum += rollup::user_engagement(h.model, h.user(account, account + "-u" + std::to_string(i)));
  return sum;
}

}  // namespace

TEST_CASE("rollup is not a sum: thirty casual users do not outscore four engaged buyers",
          "[seed][claim]") {
  Harness h;
  for (int i = 0; i < 30; ++i)
    member(h, "casual", "casual-u" + std::to_string(i), R"({"department":"support"})", 3);
  member(h, "buying", "buying-u0", R"({"role":"admin","department":"it"})", 20);
  member(h, "buying", "buying-u1", R"({"role":"champion","department":"marketing"})", 20);
  member(h, "buying", "buying-u2", R"({"department":"marketing"})", 20);
  member(h, "buying", "buying-u3", R"({"role":"member","department":"sales"})", 20);
  h.send(track("buying-u0", "Billing Page Viewed", kT0 + kHour));
  // A naive sum of user engagement prefers the casual account...
  REQUIRE(engagement_sum(h, "casual", 30) > engagement_sum(h, "buying", 4));
  // ...the rollup does not.
  CHECK(h.score_now("buying").score > h.score_now("casual").score + 10);
  CHECK(h.score_now("buying").components.depth > h.score_now("casual").components.depth);
}

TEST_CASE("breadth beats headcount: five users across three departments beat five in one",
          "[seed][claim]") {
  Harness h;
  const char* depts[] = {"eng", "eng", "sales", "sales", "finance"};
  for (int i = 0; i < 5; ++i) {
    member(h, "narrow", "n" + std::to_string(i), R"({"department":"eng"})", 5);
    member(h, "wide", "w" + std::to_string(i), std::string(R"({"department":")") + depts[i] + "\"}",
           5);
  }
  CHECK(h.score_now("wide").components.breadth > h.score_now("narrow").components.breadth);
  CHECK(h.score_now("wide").score > h.score_now("narrow").score);
  // Departments are weighted above head count: one more department is worth more than one
  // more user in the same department.
  Harness g;
  for (int i = 0; i < 3; ++i)
    member(g, "base", "b" + std::to_string(i), R"({"department":"eng"})", 5);
  for (int i = 0; i < 3; ++i)
    member(g, "plus_user", "p" + std::to_string(i), R"({"department":"eng"})", 5);
  member(g, "plus_user", "p3", R"({"department":"eng"})", 5);
  for (int i = 0; i < 3; ++i)
    member(g, "plus_dept", "d" + std::to_string(i), R"({"department":"eng"})", 5);
  member(g, "plus_dept", "d3", R"({"department":"legal"})", 5);
  CHECK(g.score_now("plus_dept").components.breadth - g.score_now("base").components.breadth >
        g.score_now("plus_user").components.breadth - g.score_now("base").components.breadth);
  // Head count does not buy breadth: three users in three departments are broader than ten in
  // one (0.548 against 0.425 with the shipped weights; a model weighing head count 0.6 and
  // departments 0.2 would order them the other way).
  Harness k;
  for (int i = 0; i < 3; ++i)
    member(k, "three", "t" + std::to_string(i), R"({"department":"d)" + std::to_string(i) + "\"}",
           5);
  for (int i = 0; i < 10; ++i)
    member(k, "ten", "x" + std::to_string(i), R"({"department":"eng"})", 5);
  CHECK(k.score_now("three").components.breadth > k.score_now("ten").components.breadth + 0.1);
  CHECK(k.score_now("three").score > k.score_now("ten").score);
}

TEST_CASE(
    "breadth is weighted above depth: three departments using the product outscore one analyst "
    "using it intensively",
    "[seed][claim]") {
  // Seed 000: "an account where marketing, sales, and operations all use the product" against
  // "one where a single analyst uses it intensively". Ordinary use (ten views each, engagement
  // 0.63) across three functions, against a hundred views by one user (engagement ~1).
  Harness h;
  for (const char* dept : {"marketing", "sales", "operations"})
    member(h, "spread", std::string("spread-") + dept,
           std::string(R"({"role":"member","department":")") + dept + "\"}", 10);
  member(h, "analyst", "analyst-u", R"({"role":"member","department":"analytics"})", 100);
  const auto spread = h.score_now("spread");
  const auto analyst = h.score_now("analyst");
  REQUIRE(analyst.components.depth > spread.components.depth + 0.3);  // the analyst goes deeper
  CHECK(spread.score > analyst.score);
  // It is the weights that decide: with depth weighted above breadth the analyst would win.
  auto swapped = shipped_model_config();
  std::swap(swapped.weights.breadth, swapped.weights.depth);
  const rollup::Model other(swapped);
  const auto spread_state = h.state("spread");
  const auto analyst_state = h.state("analyst");
  CHECK(rollup::evaluate(other, analyst_state, kT0).score >
        rollup::evaluate(other, spread_state, kT0).score);
}

TEST_CASE("single-user activation is not qualification", "[seed][claim]") {
  Harness h;
  h.send(group("champ", "solo", kT0,
               R"({"seats":2,"employees":300,"industry":"software","plan":"business"})"));
  h.send(identify("champ", kT0, R"({"role":"admin","department":"eng"})"));
  for (int i = 0; i < 60; ++i) h.send(track("champ", "Report Created", kT0 + i));
  for (const char* e : {"SSO Configured", "SCIM Connected", "Admin Role Assigned",
                        "Billing Page Viewed", "Contact Sales Clicked", "Plan Comparison Viewed",
                        "Asset Shared", "Comment Added", "Comment Added"})
    h.send(track("champ", e, kT0 + kHour));
  for (int i = 0; i < 12; ++i) h.send(track("champ", "Workspace Created", kT0 + kHour));
  for (int i = 0; i < 2; ++i) h.send(track("champ", "User Invited", kT0 + kHour));
  auto s = h.score_now("solo");
  REQUIRE(s.score >= 60.0);  // the number alone would qualify...
  CHECK(s.single_user_activation);
  CHECK(s.band == Band::kNurture);  // ...but the band is capped
  CHECK(s.routing == rollup::Routing::kEnablement);
  // Its breadth stays low: one user and one department; only its shared assets count in full.
  const double single_breadth = s.components.breadth;
  CHECK(single_breadth <= 0.3 * std::log(2.0) / std::log(11.0) + 0.5 / 4 + 0.2 + 1e-12);
  REQUIRE_FALSE(h.sink.of_kind(SignalKind::kThresholdCrossed).empty());
  CHECK(h.sink.of_kind(SignalKind::kThresholdCrossed).back().signal.score.band == Band::kNurture);

  // Once a second user is active the account qualifies on the same merits.
  h.send(group("peer", "solo", kT0 + 2 * kHour));
  h.send(identify("peer", kT0 + 2 * kHour, R"({"department":"finance"})"));
  for (int i = 0; i < 10; ++i) h.send(track("peer", "Report Created", kT0 + 2 * kHour + i));
  s = h.score_now("solo");
  CHECK_FALSE(s.single_user_activation);
  CHECK(s.band >= Band::kQualified);
  CHECK(s.components.breadth > single_breadth);
  CHECK(h.sink.of_kind(SignalKind::kThresholdCrossed).back().signal.score.band >= Band::kQualified);
}

TEST_CASE("silent accounts decay: a qualified account crosses down with no new event",
          "[seed][claim][timers]") {
  Harness h;
  for (int i = 0; i < 4; ++i) {
    const std::string u = "u" + std::to_string(i);
    h.send(group(u, "a", kT0, R"({"employees":300,"industry":"saas","plan":"team"})"));
    h.send(identify(u, kT0, R"({"department":"d)" + std::to_string(i) + "\"}"));
    for (int k = 0; k < 15; ++k) h.send(track(u, "Report Created", kT0 + k));
  }
  h.send(track("u0", "Contact Sales Clicked", kT0 + kHour));
  h.send(track("u0", "SSO Configured", kT0 + kHour));
  const auto at_last_activity = h.score_now("a");
  REQUIRE(at_last_activity.band == Band::kQualified);
  const rollup::AccountState silent = h.state("a");  // as the silence begins
  const auto before = h.sink.signals.size();
  h.processor.advance_to(kT0 + 60 * kDay);  // nothing but time passes
  std::vector<scorer::OutputSignal> down;
  for (auto i = before; i < h.sink.signals.size(); ++i)
    if (h.sink.signals[i].signal.kind == SignalKind::kThresholdCrossed)
      down.push_back(h.sink.signals[i]);
  REQUIRE_FALSE(down.empty());
  CHECK(down.back().signal.score.band == Band::kCold);
  for (const auto& s : down) CHECK(s.signal.score.band < s.signal.previous_band);
  CHECK(h.score("a", kT0 + 60 * kDay).band == Band::kCold);
  // The first step down is decay's, not the active window's (which ends after 28 days): at
  // t_last + h * log2(behaviour / (57 - fit points)), h = 14 days for this mid-market account.
  const TimeMs t_last = kT0 + kHour;
  const double fit_points = 15.0 * at_last_activity.components.fit;
  const double after = 14.0 * static_cast<double>(kDay) *
                       std::log2((at_last_activity.score - fit_points) / (57.0 - fit_points));
  CHECK(down.front().signal.previous_band == Band::kQualified);
  CHECK(down.front().signal.event_time == t_last + static_cast<TimeMs>(std::ceil(after)) + 1);
  CHECK(down.front().signal.event_time < kT0 + 10 * kDay);
  // And independently of that formula: the score is below qualified's lower edge (60 less 3
  // of hysteresis) at the crossing, and was above it 2 ms before (the timer is set 1 ms past
  // the crossing rounded up to a millisecond, so that rounding cannot leave it just short).
  const TimeMs crossing = down.front().signal.event_time;
  CHECK(rollup::evaluate(h.model, silent, crossing - 2).score > 57.0);
  CHECK(rollup::evaluate(h.model, silent, crossing).score < 57.0);
}

TEST_CASE("decay halves the behavioural score after one half-life of silence (seed 002)",
          "[seed][claim]") {
  Harness h;
  h.send(group("u", "a", kT0, R"({"employees":300,"industry":"saas"})"));
  for (int k = 0; k < 15; ++k) h.send(track("u", "Report Created", kT0));
  const auto now = h.score("a", kT0);
  const auto later = h.score("a", kT0 + 14 * kDay);
  const double fit_points = 15.0 * now.components.fit;
  CHECK(later.score - fit_points == Approx((now.score - fit_points) / 2));
}

TEST_CASE("account-fabric events are first-class signals", "[seed][claim]") {
  Harness h;
  for (const char* acc : {"plain", "fabric"}) {
    const std::string a = acc;
    member(h, a, a + "-u", R"({"department":"eng"})", 10);
  }
  for (const char* e : {"SCIM Connected", "SSO Configured", "Billing Page Viewed", "Asset Shared"})
    h.send(track("fabric-u", e, kT0 + kHour));
  const auto plain = h.score_now("plain");
  const auto fabric = h.score_now("fabric");
  CHECK(fabric.components.fabric > plain.components.fabric);
  CHECK(fabric.score > plain.score + 5);
  // Four fabric events from one user outweigh doubling that user's product usage.
  for (int i = 0; i < 10; ++i) h.send(track("plain-u", "Dashboard Viewed", kT0 + kHour));
  CHECK(fabric.score > h.score_now("plain").score);
}

TEST_CASE("the first active user in a new department is derived and signalled once",
          "[seed][claim]") {
  Harness h;
  member(h, "a", "u1", R"({"department":"eng"})", 2);
  member(h, "a", "u2", R"({"department":"eng"})", 2);
  member(h, "a", "u3", R"({"department":"Finance"})", 2);
  auto breadth = h.sink.of_kind(SignalKind::kBreadthExpansion);
  REQUIRE(breadth.size() == 2);
  CHECK(breadth[0].signal.department == "eng");
  CHECK(breadth[1].signal.department == "finance");
  // Leaving and coming back never re-announces a department.
  h.processor.advance_to(kT0 + 40 * kDay);
  member(h, "a", "u4", R"({"department":"eng"})", 2, kT0 + 40 * kDay);
  CHECK(h.sink.of_kind(SignalKind::kBreadthExpansion).size() == 2);
  // An identify without activity does not count as a department being active.
  h.send(group("u5", "a", kT0 + 40 * kDay));
  h.send(identify("u5", kT0 + 40 * kDay, R"({"department":"legal"})"));
  CHECK(h.sink.of_kind(SignalKind::kBreadthExpansion).size() == 2);
}

TEST_CASE("hiding the why is avoided: every signal carries components and top drivers",
          "[seed][claim]") {
  std::vector<std::string> input;
  auto add_member = [&](const std::string& user, const std::string& traits) {
    input.push_back(group(user, "a", kT0));
    input.push_back(identify(user, kT0, traits));
    for (int i = 0; i < 30; ++i) input.push_back(track(user, "Dashboard Viewed", kT0 + i));
  };
  add_member("u1", R"({"role":"admin","department":"eng"})");
  add_member("u2", R"({"department":"sales"})");
  add_member("u3", R"({"department":"ops"})");
  input.push_back(track("u1", "Contact Sales Clicked", kT0 + kHour));
  Harness h;
  h.send_all(input);

  const std::set<std::string> names = {"breadth.active_users",
                                       "breadth.departments",
                                       "breadth.shared_assets",
                                       "depth",
                                       "fit",
                                       "fabric.provisioning",
                                       "fabric.administration",
                                       "fabric.commercial_intent",
                                       "fabric.collaboration",
                                       "fabric.shared_asset",
                                       "fabric.breadth_expansion"};
  REQUIRE_FALSE(h.sink.of_kind(SignalKind::kThresholdCrossed).empty());
  for (const auto& s : h.sink.signals) {
    const auto& score = s.signal.score;
    REQUIRE(score.drivers.size() == 3);
    double points = 0;
    for (std::size_t i = 0; i < 3; ++i) {
      CHECK(names.count(std::string(score.drivers[i].name)) == 1);
      if (i > 0) CHECK(score.drivers[i - 1].points >= score.drivers[i].points);
      points += score.drivers[i].points;
    }
    CHECK(points <= score.score + 1e-9);
    CHECK(score.drivers[0].name != score.drivers[1].name);
    CHECK(score.drivers[1].name != score.drivers[2].name);
    CHECK(score.drivers[0].name != score.drivers[2].name);
  }

  // Each crossing's components and drivers are the account's evaluation when it fired: the
  // same input, stopped after the event that caused the crossing, evaluated at its time.
  std::size_t checked = 0;
  for (std::size_t n = 1; n <= input.size(); ++n) {
    Harness prefix;
    prefix.send_all({input.begin(), input.begin() + static_cast<std::ptrdiff_t>(n)});
    const auto crossings = prefix.sink.of_kind(SignalKind::kThresholdCrossed);
    if (crossings.size() != checked + 1) continue;
    const auto& fired = crossings.back().signal;
    const auto now = prefix.score("a", fired.event_time);
    CHECK(fired.score.score == now.score);
    CHECK(fired.score.components.breadth == now.components.breadth);
    CHECK(fired.score.components.depth == now.components.depth);
    CHECK(fired.score.components.fabric == now.components.fabric);
    CHECK(fired.score.components.fit == now.components.fit);
    for (std::size_t i = 0; i < 3; ++i) {
      CHECK(fired.score.drivers[i].name == now.drivers[i].name);
      CHECK(fired.score.drivers[i].points == now.drivers[i].points);
    }
    ++checked;
  }
  CHECK(checked == h.sink.of_kind(SignalKind::kThresholdCrossed).size());
}

TEST_CASE("expansion readiness: seat patterns are detected in paying accounts", "[seed][claim]") {
  Harness h;
  // Healthy expansion: seats rising, high fill, approaching the limit.
  h.send(group("a0", "grow", kT0, R"({"seats":4,"seat_limit":10})"));
  for (int i = 0; i < 8; ++i) member(h, "grow", "grow-" + std::to_string(i), "{}", 2);
  h.send(track("a0", "Seat Added", kT0 + kHour, R"({"seats":4})", "grow"));
  CHECK(h.score_now("grow").pattern == rollup::Pattern::kHealthyExpansion);
  // Stalled provisioning: 20 seats invited, two people using them.
  h.send(group("b0", "stall", kT0, R"({"seats":2,"seat_limit":100})"));
  member(h, "stall", "b1", "{}", 2);
  h.send(track("b0", "Bulk Invite Sent", kT0 + kHour, R"({"count":20})", "stall"));
  CHECK(h.score_now("stall").pattern == rollup::Pattern::kStalledProvisioning);
  // Contracting: seats removed.
  h.send(group("c0", "shrink", kT0, R"({"seats":10})"));
  h.send(track("c0", "Seat Removed", kT0 + kHour, R"({"seats":3})", "shrink"));
  CHECK(h.score_now("shrink").pattern == rollup::Pattern::kContracting);
  // Not contracting: an account that drops its idle seats and keeps the rest busy.
  h.send(group("d0", "rightsize", kT0, R"({"seats":20})"));
  for (int i = 0; i < 9; ++i) member(h, "rightsize", "d-" + std::to_string(i), "{}", 2);
  h.send(track("d0", "Seat Removed", kT0 + kHour, R"({"seats":10})", "rightsize"));
  CHECK(h.score_now("rightsize").seats.seat_velocity < 0);
  CHECK(h.score_now("rightsize").seats.fill_rate >= 0.6);
  CHECK(h.score_now("rightsize").pattern != rollup::Pattern::kContracting);
  CHECK(h.sink.of_kind(SignalKind::kSeatExpansion).size() >= 3);
}

TEST_CASE("hysteresis: a score hovering at a threshold does not flap", "[seed][claim]") {
  // A score oscillating 2 points around 60 crosses up once and never back down.
  const rollup::BandParams p;
  Band band = Band::kNurture;
  int changes = 0;
  for (int i = 0; i < 100; ++i) {
    const double score = 60.0 + (i % 2 == 0 ? 1.0 : -2.0);
    const Band next = rollup::band_with_hysteresis(p, score, band);
    changes += next != band;
    band = next;
  }
  CHECK(changes == 1);
  CHECK(band == Band::kQualified);
}

TEST_CASE("cost per event does not grow with users: account state is bounded", "[seed][claim]") {
  auto state_bytes = [](int users) {
    Harness h;
    for (int i = 0; i < users; ++i) {
      const std::string u = "u" + std::to_string(i);
      h.send(group(u, "a", kT0));
      h.send(identify(u, kT0, R"({"department":"d)" + std::to_string(i % 6) + "\"}"));
      h.send(track(u, "Dashboard Viewed", kT0 + (i % 20) * kDay));
    }
    scorer::StoredAccount stored{h.state("a"), rollup::kNever, {}};
    return scorer::encode(stored).size();
  };
  // The same bounded buckets whatever the head count; only the varint counts inside grow.
  const auto tiny = state_bytes(50);
  const auto large = state_bytes(3000);
  const auto huge = state_bytes(6000);
  CHECK(huge <= large + 8);
  CHECK(static_cast<double>(large) < 1.25 * static_cast<double>(tiny));
}

TEST_CASE("cost per event does not grow with departments: at most max_departments are tracked",
          "[seed][claim]") {
  // Every user in a department of their own: the one input that could grow an account's state
  // without bound. The first 64 (activity.max_departments) count, each with its
  // breadth_expansion signal; later ones are not tracked and signal nothing.
  Harness h;
  const int cap = rollup::ModelConfig{}.activity.max_departments;
  REQUIRE(cap == 64);
  std::size_t expansions = 0;
  const auto count_expansions = [&] {
    std::size_t n = 0;
    for (const auto& s : h.sink.signals) n += s.signal.kind == SignalKind::kBreadthExpansion;
    return n;
  };
  for (int i = 0; i < 3 * cap; ++i) {
    const std::string u = "u" + std::to_string(i);
    h.send(group(u, "a", kT0));
    h.send(identify(u, kT0, R"({"department":"d)" + std::to_string(i) + "\"}"));
    h.send(track(u, "Dashboard Viewed", kT0 + i));
    if (i == cap - 1) expansions = count_expansions();
  }
  CHECK(expansions == static_cast<std::size_t>(cap));
  CHECK(count_expansions() == static_cast<std::size_t>(cap));  // none after the 64th
  CHECK(h.state("a").departments.size() == static_cast<std::size_t>(cap));
  CHECK(h.score_now("a").active_departments == static_cast<std::uint32_t>(cap));
}

TEST_CASE("fabric signal strength follows seed 000's table: very high above high above medium-high",
          "[seed][claim]") {
  // One event of each category by a member (role weight 1), each in an account of its own.
  Harness h;
  const std::vector<std::pair<std::string, std::string>> events = {
      {"commercial", "Contact Sales Clicked"},  // very high
      {"provisioning", "User Invited"},         // high
      {"administration", "SCIM Connected"},     // high
      {"collaboration", "Comment Added"},       // high
      {"shared", "Template Published"},         // medium-high
  };
  std::map<std::string, double> fabric;
  for (const auto& [account, event] : events) {
    member(h, account, account + "-u", R"({"role":"member","department":"eng"})", 1);
    h.send(track(account + "-u", event, kT0 + kHour));
    fabric[account] = h.score_now(account).components.fabric;
    CHECK(fabric[account] > 0);
  }
  CHECK(fabric["commercial"] > fabric["provisioning"]);
  CHECK(fabric["provisioning"] == fabric["administration"]);
  CHECK(fabric["administration"] == fabric["collaboration"]);
  CHECK(fabric["collaboration"] > fabric["shared"]);
  // Breadth expansion is very high too: a new department's first user weighs as much as a
  // commercial-intent event of the same strength.
  const auto& share = h.model.derived().fabric_share;
  CHECK(share[static_cast<int>(rollup::FabricCategory::kBreadthExpansion)] ==
        share[static_cast<int>(rollup::FabricCategory::kCommercialIntent)]);
}

TEST_CASE("a billing page viewed by an admin weighs more than by a member", "[seed][claim]") {
  Harness h;
  member(h, "by_admin", "admin-u", R"({"role":"admin","department":"it"})", 1);
  member(h, "by_member", "member-u", R"({"role":"member","department":"it"})", 1);
  h.send(track("admin-u", "Billing Page Viewed", kT0 + kHour));
  h.send(track("member-u", "Billing Page Viewed", kT0 + kHour));
  const auto commercial = static_cast<int>(rollup::FabricCategory::kCommercialIntent);
  CHECK(h.state("by_admin").fabric[commercial] == Approx(1.5));
  CHECK(h.state("by_member").fabric[commercial] == Approx(1.0));
  CHECK(h.score_now("by_admin").components.fabric > h.score_now("by_member").components.fabric);
}

TEST_CASE("administration and billing events make an admin, other commercial intent does not",
          "[seed][claim]") {
  // The issue: "administration and billing events make an admin"; seed 000: "admin actions,
  // billing-page access". Comparing plans, reading the terms or contacting sales is evaluation,
  // which any user does (seed 004).
  Harness h;
  const std::vector<std::pair<std::string, rollup::Role>> cases = {
      {"Admin Role Assigned", rollup::Role::kAdmin},
      {"SSO Configured", rollup::Role::kAdmin},
      {"SCIM Connected", rollup::Role::kAdmin},
      {"Billing Page Viewed", rollup::Role::kAdmin},
      {"Plan Comparison Viewed", rollup::Role::kMember},
      {"Contact Sales Clicked", rollup::Role::kMember},
      {"Terms Page Viewed", rollup::Role::kMember},
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const std::string user = "role-u" + std::to_string(i);
    member(h, "roles", user, R"({"department":"ops"})", 1);
    h.send(track(user, cases[i].first, kT0 + kHour));
    rollup::Role role = rollup::Role::kUnknown;
    rollup::role_weight(h.model, h.user("roles", user), &role);
    CAPTURE(cases[i].first);
    CHECK(role == cases[i].second);
  }
  // A taxonomy entry can say otherwise, and a new administration event infers by default.
  const auto c = scorer::parse_config(
      "model: {taxonomy: {events: [{name: Terms Page Viewed, infers_admin: true},\n"
      "  {name: Vault Rotated, kind: administration}]}}");
  const rollup::Model custom(c.model);
  CHECK(custom.rule_for("Terms Page Viewed")->infers_admin);
  CHECK(custom.rule_for("Vault Rotated")->infers_admin);
  CHECK_FALSE(custom.rule_for("Contact Sales Clicked")->infers_admin);
}

TEST_CASE("terms-page visits are commercial intent (seed 004)", "[seed][claim]") {
  Harness h;
  member(h, "terms", "terms-u", R"({"role":"member","department":"legal"})", 1);
  member(h, "plain", "plain-u", R"({"role":"member","department":"legal"})", 1);
  const auto usage_before = h.score_now("terms").components.depth;
  h.send(track("terms-u", "Terms Page Viewed", kT0 + kHour));
  h.send(track("plain-u", "Dashboard Viewed", kT0 + kHour));
  const auto commercial = static_cast<int>(rollup::FabricCategory::kCommercialIntent);
  CHECK(h.state("terms").fabric[commercial] == Approx(1.0));
  CHECK(h.state("plain").fabric[commercial] == 0.0);
  CHECK(h.score_now("terms").components.fabric > h.score_now("plain").components.fabric);
  // Not product usage: the user's engagement only decays by the hour that passed.
  CHECK(h.score_now("terms").components.depth <= usage_before);
}
