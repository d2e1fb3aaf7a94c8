// Every claim of the seeds that the model relies on, one test each, named after the claim.
#include <catch2/catch.hpp>
#include <cmath>

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
  h.processor.flush();
  double sum = 0;
  for (int i = 0; i < users; ++i) {
    auto bytes = h.store->get(scorer::keys::user(account, account + "-u" + std::to_string(i)));
    sum += rollup::user_engagement(h.model, scorer::decode_user(bytes.value()).value());
  }
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
  CHECK(h.sink.of_kind(SignalKind::kThresholdCrossed).back().signal.score.band == Band::kNurture);

  // Once a second user is active the account qualifies on the same merits.
  h.send(group("peer", "solo", kT0 + 2 * kHour));
  h.send(identify("peer", kT0 + 2 * kHour, R"({"department":"finance"})"));
  for (int i = 0; i < 10; ++i) h.send(track("peer", "Report Created", kT0 + 2 * kHour + i));
  s = h.score_now("solo");
  CHECK_FALSE(s.single_user_activation);
  CHECK(s.band >= Band::kQualified);
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
  REQUIRE(h.score_now("a").band >= Band::kQualified);
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
  Harness h;
  member(h, "a", "u1", R"({"role":"admin","department":"eng"})", 30);
  member(h, "a", "u2", R"({"department":"sales"})", 30);
  member(h, "a", "u3", R"({"department":"ops"})", 30);
  h.send(track("u1", "Contact Sales Clicked", kT0 + kHour));
  for (const auto& s : h.sink.signals) {
    CHECK(s.signal.score.drivers.size() <= 3);
    CHECK_FALSE(s.signal.score.drivers.empty());
  }
  REQUIRE_FALSE(h.sink.of_kind(SignalKind::kThresholdCrossed).empty());
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
