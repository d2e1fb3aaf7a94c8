// Routing (seed 002) as signals: a routing change within a band is published, once, and a
// potential hovering at the full-sales threshold does not flap it (docs/scoring.md §5, §7).
#include <catch2/catch.hpp>
#include <string>

#include "harness_send.h"

using namespace pqa;
using namespace pqa::test;
using rollup::Band;
using rollup::Routing;
using rollup::SignalKind;

TEST_CASE("leaving full sales takes expansion potential full_sales_hysteresis below entering it",
          "[scoring][routing]") {
  const auto config = shipped_model_config();  // enter above 0.8, stay above 0.75
  rollup::Score s;
  s.band = Band::kHot;
  s.expansion_potential = 0.78;
  CHECK(rollup::route(config, s, Routing::kFullSales) == Routing::kFullSales);
  CHECK(rollup::route(config, s, Routing::kPlsAssist) == Routing::kPlsAssist);
  CHECK(rollup::route(config, s) == Routing::kPlsAssist);
  s.expansion_potential = 0.75;
  CHECK(rollup::route(config, s, Routing::kFullSales) == Routing::kPlsAssist);
  s.expansion_potential = 0.81;
  CHECK(rollup::route(config, s, Routing::kPlsAssist) == Routing::kFullSales);
}

namespace {

/// A hot account of four users in two departments (breadth 0.65, below the full-sales
/// threshold) with four seats and no seat limit known: routed to PLS assist.
void send_hot_account(Harness& h, TimeMs t) {
  h.send(group("u0", "hot", t,
               R"({"employees":300,"industry":"software","plan":"business","seats":4})"));
  for (int i = 0; i < 4; ++i) {
    const std::string u = "u" + std::to_string(i);
    h.send(group(u, "hot", t));
    h.send(identify(u, t, i < 2 ? R"({"department":"eng"})" : R"({"department":"ops"})"));
    for (int k = 0; k < 40; ++k) h.send(track(u, "Report Created", t));
  }
  for (const char* e :
       {"SSO Configured", "SCIM Connected", "Admin Role Assigned", "Billing Page Viewed",
        "Contact Sales Clicked", "Plan Comparison Viewed", "Asset Shared", "Comment Added",
        "Workspace Created", "Shared Project Created", "Template Published"})
    for (int k = 0; k < 6; ++k) h.send(track("u0", e, t));
}

std::vector<scorer::OutputSignal> routing_changes(const Harness& h) {
  return h.sink.of_kind(SignalKind::kRoutingChanged);
}

}  // namespace

TEST_CASE("a hot account whose seat limit comes within reach is routed to full sales, once",
          "[scoring][routing]") {
  Harness h;
  send_hot_account(h, kT0);
  const auto before = h.score_now("hot");
  REQUIRE(before.band == Band::kHot);
  REQUIRE(before.routing == Routing::kPlsAssist);
  REQUIRE(before.expansion_potential <= 0.8);
  // (On the way up it was nurture with one active user among four seats, enablement, until
  // the second user: a routing change within a band too.)
  h.sink.signals.clear();
  // The plan's ceiling is 4 seats, all 4 users active: proximity 1, potential 1.
  h.send(group("u0", "hot", kT0 + kHour, R"({"seat_limit":4})"));
  auto changes = routing_changes(h);
  REQUIRE(changes.size() == 1);
  CHECK(changes[0].signal.previous_routing == Routing::kPlsAssist);
  CHECK(changes[0].signal.score.routing == Routing::kFullSales);
  CHECK(changes[0].signal.score.band == Band::kHot);
  CHECK(changes[0].signal.event_time == kT0 + kHour);
  CHECK_FALSE(changes[0].signal.score.drivers.empty());
  // More of the same changes nothing: one signal per change, not per event.
  h.send(track("u1", "Report Created", kT0 + 2 * kHour));
  CHECK(routing_changes(h).size() == 1);
}

TEST_CASE("a nurture account left with one active user among several seats routes to enablement",
          "[scoring][routing]") {
  Harness h;
  h.send(group("solo", "acct", kT0, R"({"employees":300,"industry":"software","seats":1})"));
  h.send(identify("solo", kT0, R"({"role":"admin","department":"eng"})"));
  for (int k = 0; k < 30; ++k) h.send(track("solo", "Report Created", kT0));
  for (const char* e : {"SSO Configured", "Billing Page Viewed", "Asset Shared"})
    h.send(track("solo", e, kT0));
  const auto before = h.score_now("acct");
  REQUIRE(before.band == Band::kNurture);
  REQUIRE(before.routing == Routing::kSelfServe);
  // Two more seats, not taken: single-user activation (seed 000, failure pattern 3), within
  // the same band.
  h.send(group("solo", "acct", kT0 + kHour, R"({"seats":3})"));
  const auto after = h.score_now("acct");
  REQUIRE(after.single_user_activation);
  REQUIRE(after.band == Band::kNurture);
  CHECK(h.sink.of_kind(SignalKind::kThresholdCrossed).back().signal.event_time == kT0);
  const auto changes = routing_changes(h);
  REQUIRE(changes.size() == 1);
  CHECK(changes[0].signal.previous_routing == Routing::kSelfServe);
  CHECK(changes[0].signal.score.routing == Routing::kEnablement);
  CHECK(changes[0].signal.score.single_user_activation);
}

TEST_CASE("a cold account's routing changes publish nothing", "[scoring][routing]") {
  Harness h;
  // One user, barely active, in a 5-seat account: cold, single-user activation (enablement),
  // then a second user makes it `none`; neither is a sales motion.
  h.send(group("a", "quiet", kT0, R"({"seats":5})"));
  h.send(track("a", "Report Created", kT0));
  REQUIRE(h.score_now("quiet").band == Band::kCold);
  REQUIRE(h.score_now("quiet").routing == Routing::kEnablement);
  h.send(group("b", "quiet", kT0 + kHour));
  h.send(track("b", "Report Created", kT0 + kHour));
  REQUIRE(h.score_now("quiet").routing == Routing::kNone);
  CHECK(routing_changes(h).empty());
}

TEST_CASE("an account record without a published routing sets it without a signal",
          "[scoring][routing]") {
  Harness h;
  send_hot_account(h, kT0);
  auto state = h.state("hot");
  REQUIRE(state.routing == Routing::kPlsAssist);
  state.routing.reset();  // as a record written by a build before the field reads
  rollup::EventDecoder decoder(h.model);
  rollup::Event event;
  REQUIRE_FALSE(decoder.decode_into(track("u9", "Report Created", kT0 + kHour), event));
  rollup::UserState user;
  auto outcome = rollup::apply_event(h.model, state, user, true, event, kT0 + kHour);
  for (const auto& s : outcome.signals) CHECK(s.kind != SignalKind::kRoutingChanged);
  CHECK(state.routing.has_value());
}
