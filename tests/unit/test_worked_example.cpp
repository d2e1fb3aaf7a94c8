// Reproduces the worked example of docs/scoring.md, number for number.
#include <catch2/catch.hpp>

#include "harness_send.h"

using namespace pqa;
using namespace pqa::test;
using rollup::SignalKind;

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

  const auto s = h.score("acme", t0);
  CHECK(s.components.depth == Approx(0.400882).margin(5e-7));
  CHECK(s.components.breadth == Approx(0.701356).margin(5e-7));
  CHECK(s.components.fabric == Approx(0.540535).margin(5e-7));
  CHECK(s.components.fit == 1.0);
  CHECK(s.score == Approx(63.08).margin(0.005));
  CHECK(s.band == rollup::Band::kQualified);
  CHECK(s.routing == rollup::Routing::kPlsAssist);
  REQUIRE(s.drivers.size() == 3);
  CHECK(s.drivers[0].name == "breadth.departments");
  CHECK(s.drivers[0].points == Approx(17.50).margin(0.005));
  CHECK(s.drivers[1].name == "fit");
  CHECK(s.drivers[1].points == Approx(15.00).margin(0.005));
  CHECK(s.drivers[2].name == "depth");
  CHECK(s.drivers[2].points == Approx(10.02).margin(0.005));
  CHECK(s.seats.provisioned_seats == 15);
  CHECK(s.seats.active_users == 4);
  CHECK(s.seats.fill_rate == Approx(4.0 / 15));
  CHECK(s.seats.seat_velocity == 5);
  CHECK(s.seats.seat_limit_proximity == Approx(0.2));
  CHECK(s.pattern == rollup::Pattern::kStalledProvisioning);

  CHECK(h.sink.of_kind(SignalKind::kBreadthExpansion).size() == 4);
  auto up = h.sink.of_kind(SignalKind::kThresholdCrossed);
  REQUIRE_FALSE(up.empty());
  CHECK(up.back().signal.score.band == rollup::Band::kQualified);
  CHECK(h.sink.of_kind(SignalKind::kSeatExpansion).back().signal.score.pattern ==
        rollup::Pattern::kStalledProvisioning);

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
  CHECK(down[1].signal.event_time == Approx(t0 + 15.79227686 * kDay).margin(2.0));
}
