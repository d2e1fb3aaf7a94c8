// Reproduces the worked example of docs/scoring.md, number for number.
#include <array>
#include <catch2/catch.hpp>
#include <cmath>

#include "harness_send.h"

using namespace pqa;
using namespace pqa::test;
using rollup::SignalKind;

namespace {

/// Catch2's Approx keeps its relative epsilon beside a margin; here only the margin counts.
Approx near(double value, double margin) {
  return Approx(value).margin(margin).epsilon(0);
}

}  // namespace

TEST_CASE("worked example of docs/scoring.md", "[scoring][worked_example]") {
  Harness h;
  const TimeMs t0 = kT0 + 9 * kHour;  // 2026-03-02T09:00:00Z
  REQUIRE(ts(t0) == "2026-03-02T09:00:00.000Z");
  h.send(
      group("u1", "acme", t0,
            R"({"employees":250,"industry":"Software","plan":"team","seats":10,"seat_limit":20})"));
  for (const char* u : {"u2", "u3", "u4"}) h.send(group(u, "acme", t0));
  h.send(identify("u1", t0, R"({"role":"admin","department":"engineering"})"));
  h.send(identify("u2", t0, R"({"role":"member","department":"marketing"})"));
  h.send(identify("u3", t0, R"({"department":"sales"})"));
  h.send(identify("u4", t0, R"({"role":"billing_owner","department":"finance"})"));
  for (int i = 0; i < 5; ++i) h.send(track("u1", "Report Created", t0));
  for (int i = 0; i < 5; ++i) h.send(track("u2", "Dashboard Viewed", t0));
  for (int i = 0; i < 20; ++i) h.send(track("u3", "Report Created", t0));
  for (int i = 0; i < 3; ++i) h.send(track("u4", "Dashboard Viewed", t0));
  for (const char* e :
       {"SSO Configured", "Billing Page Viewed", "Plan Comparison Viewed", "Contact Sales Clicked"})
    h.send(track("u1", e, t0));
  h.send(track("u1", "Seat Added", t0, R"({"seats":5})"));
  h.send(track("u2", "Asset Shared", t0));

  // Users: engagement, and u3's role inferred from it.
  const std::array<double, 4> engagement = {0.632121, 0.393469, 0.981684, 0.259182};
  const std::array<double, 4> role_weight = {1.5, 1.0, 1.3, 1.5};
  for (int i = 0; i < 4; ++i) {
    const auto u = h.user("acme", "u" + std::to_string(i + 1));
    CHECK(rollup::user_engagement(h.model, u) == near(engagement[i], 5e-7));
    CHECK(rollup::role_weight(h.model, u) == role_weight[i]);
  }
  rollup::Role inferred = rollup::Role::kUnknown;
  rollup::role_weight(h.model, h.user("acme", "u3"), &inferred);
  CHECK(inferred == rollup::Role::kChampion);

  // Fabric per category (all at t0, so each sum is its landmark value), then each term.
  const auto state = h.state("acme");
  const std::array<double, rollup::kFabricCategoryCount> fabric = {3.914157, 1.5, 4.5, 1.0, 0, 4};
  const std::array<double, rollup::kFabricCategoryCount> terms = {0.115066, 0.062127, 0.163552,
                                                                  0.044758, 0,        0.155032};
  for (std::size_t c = 0; c < rollup::kFabricCategoryCount; ++c) {
    CHECK(state.fabric[c] == near(fabric[c], 5e-7));
    const double share = h.model.derived().fabric_share[c];
    CHECK(share * (1 - std::exp(-state.fabric[c] / 3.0)) == near(terms[c], 5e-7));
  }

  const auto s = h.score("acme", t0);
  CHECK(s.active_departments == 4);
  CHECK(s.components.depth == near(0.400882, 5e-7));
  CHECK(s.components.depth * 7.5 == near(3.006613, 5e-6));  // numerator over 5.3 + 0.2 * 11
  CHECK(s.components.breadth == near(0.701356, 5e-7));
  CHECK(s.components.fabric == near(0.540535, 5e-7));
  CHECK(s.components.fit == 1.0);
  CHECK(s.score == near(63.08, 0.005));
  CHECK(s.score - 15.0 == near(48.08, 0.005));  // behaviour: everything but fit
  CHECK(s.band == rollup::Band::kQualified);
  CHECK(s.routing == rollup::Routing::kPlsAssist);
  REQUIRE(s.drivers.size() == 3);
  CHECK(s.drivers[0].name == "breadth.departments");
  CHECK(s.drivers[0].points == near(17.50, 0.005));
  CHECK(s.drivers[1].name == "fit");
  CHECK(s.drivers[1].points == near(15.00, 0.005));
  CHECK(s.drivers[2].name == "depth");
  CHECK(s.drivers[2].points == near(10.02, 0.005));
  CHECK(s.seats.provisioned_seats == 15);
  CHECK(s.seats.active_users == 4);
  CHECK(s.seats.fill_rate == near(4.0 / 15, 1e-12));
  CHECK(s.seats.seat_velocity == 5);
  CHECK(s.seats.seat_limit_proximity == near(0.2, 1e-12));
  CHECK(s.pattern == rollup::Pattern::kStalledProvisioning);

  const auto breadth = h.sink.of_kind(SignalKind::kBreadthExpansion);
  REQUIRE(breadth.size() == 4);
  CHECK(breadth[0].signal.department == "engineering");
  CHECK(breadth[1].signal.department == "marketing");
  CHECK(breadth[2].signal.department == "sales");
  CHECK(breadth[3].signal.department == "finance");
  auto up = h.sink.of_kind(SignalKind::kThresholdCrossed);
  REQUIRE_FALSE(up.empty());
  for (const auto& crossing : up) CHECK(crossing.signal.score.band > crossing.signal.previous_band);
  CHECK(up.front().signal.previous_band == rollup::Band::kCold);
  CHECK(up.back().signal.score.band == rollup::Band::kQualified);
  const auto seats = h.sink.of_kind(SignalKind::kSeatExpansion);
  REQUIRE(seats.size() == 1);
  CHECK(seats[0].signal.score.pattern == rollup::Pattern::kStalledProvisioning);

  // Silence: the timer takes the account down at t0 + 2.732 days, 2026-03-05T02:33:54Z.
  h.sink.signals.clear();
  h.processor.advance_to(t0 + 20 * kDay);
  auto down = h.sink.of_kind(SignalKind::kThresholdCrossed);
  REQUIRE(down.size() == 2);
  CHECK(down[0].signal.score.band == rollup::Band::kNurture);
  CHECK(down[0].signal.event_time == t0 + 236034054);  // ceil(236034052.34 ms) + 1 ms
  CHECK(ts(down[0].signal.event_time).substr(0, 19) == "2026-03-05T02:33:54");
  CHECK(down[0].signal.score.score < 57.0);
  CHECK(down[0].signal.score.score > 56.99);
  CHECK(down[1].signal.score.band == rollup::Band::kCold);
  // t0 + 14 d * log2(48.0829 / 22) = t0 + 15.7923 days, 1,364,452,721.03 ms in exact arithmetic;
  // the timer is the crossing computed from the evaluated score (its activity sums are
  // fixed-point, 1e-9 units), rounded up to the millisecond, plus one.
  const double cold_after = 14.0 * static_cast<double>(kDay) * std::log2((s.score - 15.0) / 22.0);
  CHECK(down[1].signal.event_time == t0 + static_cast<TimeMs>(std::ceil(cold_after)) + 1);
  CHECK(static_cast<double>(down[1].signal.event_time - t0) == near(1364452721.03, 2.0));
  CHECK(down[1].signal.previous_band == rollup::Band::kNurture);
}
