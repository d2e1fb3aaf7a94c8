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

/// The calls of the worked example, all at `t0`, for the account "acme".
void send_worked_example(Harness& h, TimeMs t0) {
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
}

/// The threshold_crossed signals the sink holds.
std::size_t crossings(const Harness& h) {
  return h.sink.of_kind(SignalKind::kThresholdCrossed).size();
}

}  // namespace

TEST_CASE("worked example of docs/scoring.md", "[scoring][worked_example]") {
  Harness h;
  const TimeMs t0 = kT0 + 9 * kHour;  // 2026-03-02T09:00:00Z
  REQUIRE(ts(t0) == "2026-03-02T09:00:00.000Z");
  send_worked_example(h, t0);

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

  // Silence: decay takes the score below qualified's lower edge (57) at t0 + 2.732 days
  // (236,034,052.34 ms), within the 3-day silence grace, so the band holds until the grace
  // ends, at t0 + 3 days, 2026-03-05T09:00:00Z, when the timer takes the account down.
  const auto held = rollup::evaluate(h.model, h.state("acme"), t0 + 236034054);
  CHECK(held.score < 57.0);
  CHECK(held.band == rollup::Band::kQualified);
  h.sink.signals.clear();
  h.processor.advance_to(t0 + 20 * kDay);
  auto down = h.sink.of_kind(SignalKind::kThresholdCrossed);
  REQUIRE(down.size() == 2);
  CHECK(down[0].signal.score.band == rollup::Band::kNurture);
  CHECK(down[0].signal.event_time == t0 + 3 * kDay);
  CHECK(ts(down[0].signal.event_time) == "2026-03-05T09:00:00.000Z");
  CHECK(down[0].signal.score.score == near(56.446, 0.001));  // 15 + 48.0829 * 2^(-3/14)
  CHECK(down[1].signal.score.band == rollup::Band::kCold);
  // t0 + 14 d * log2(48.0829 / 22) = t0 + 15.7923 days, 1,364,452,721.03 ms in exact arithmetic;
  // the timer is the crossing computed from the evaluated score (its activity sums are
  // fixed-point, 1e-9 units), rounded up to the millisecond, plus one.
  const double cold_after = 14.0 * static_cast<double>(kDay) * std::log2((s.score - 15.0) / 22.0);
  CHECK(down[1].signal.event_time == t0 + static_cast<TimeMs>(std::ceil(cold_after)) + 1);
  CHECK(static_cast<double>(down[1].signal.event_time - t0) == near(1364452721.03, 2.0));
  CHECK(down[1].signal.previous_band == rollup::Band::kNurture);
}

TEST_CASE("a weekend's silence does not flap an account active every working week",
          "[seed][claim][timers]") {
  // The worked example's account (63.08, qualified; decay alone takes it below 57 after 2.73
  // days) last active on Friday at noon, back on Monday at 09:00: 2.875 days of silence.
  const TimeMs friday = kT0 + 4 * kDay + 12 * kHour;
  const TimeMs monday = friday + 2 * kDay + 21 * kHour;
  REQUIRE(ts(friday) == "2026-03-06T12:00:00.000Z");
  const auto weekend = [&](rollup::ModelConfig config) {
    Harness h(std::move(config));
    send_worked_example(h, friday);
    REQUIRE(h.score_now("acme").band == rollup::Band::kQualified);
    h.sink.signals.clear();
    h.send(track("u3", "Report Created", monday));
    return h.sink.of_kind(SignalKind::kThresholdCrossed);
  };
  // The shipped 3-day grace: decay lowers the score over the weekend, not the band.
  CHECK(weekend(shipped_model_config()).empty());
  // Without it, the account crosses down before dawn on Monday and back up at 09:00.
  auto no_grace = shipped_model_config();
  no_grace.bands.silence_grace_days = 0;
  const auto flapped = weekend(no_grace);
  REQUIRE(flapped.size() == 2);
  CHECK(flapped[0].signal.score.band == rollup::Band::kNurture);
  CHECK(ts(flapped[0].signal.event_time).substr(0, 16) == "2026-03-09T05:33");
  CHECK(flapped[1].signal.score.band == rollup::Band::kQualified);
  CHECK(flapped[1].signal.event_time == monday);
}

TEST_CASE("the silence grace holds back decay's crossings only, not the components'",
          "[scoring][timers]") {
  Harness h;
  const TimeMs t0 = kT0 + 9 * kHour;
  send_worked_example(h, t0);
  // A seat snapshot of 200 seats an hour later: 196 idle seats weigh on depth at once, and the
  // account leaves qualified then, within the grace, as no decay is involved.
  h.sink.signals.clear();
  h.send(group("u1", "acme", t0 + kHour, R"({"seats":200,"seat_limit":300})"));
  REQUIRE(crossings(h) == 1);
  CHECK(h.sink.of_kind(SignalKind::kThresholdCrossed)[0].signal.score.band ==
        rollup::Band::kNurture);
}

TEST_CASE("the silence grace holds a band, never raises one", "[scoring][timers]") {
  // A long grace (20 days) and an account whose published band is below what its undecayed
  // score gives (a component rose without activity, say): 19 days into the silence the
  // decayed score (33.8) is below nurture's edge and the undecayed one (63.1) qualifies.
  auto config = shipped_model_config();
  config.bands.silence_grace_days = 20;
  Harness h(config);
  const TimeMs t0 = kT0 + 9 * kHour;
  send_worked_example(h, t0);
  auto state = h.state("acme");
  state.band = rollup::Band::kNurture;
  const auto s = rollup::evaluate(h.model, state, t0 + 19 * kDay);
  CHECK(s.score < 37.0);
  CHECK(s.band == rollup::Band::kNurture);  // held, not raised to qualified
}
