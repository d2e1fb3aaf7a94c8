// When a partition counts as idle for the wall-clock advance (services/scorer/idle_clock.h).
#include <catch2/catch.hpp>

#include "idle_clock.h"

using pqa::scorer::IdleClock;
using namespace std::chrono_literals;

TEST_CASE("a partition is idle after idle_advance_ms without an event while the loop polls",
          "[idle]") {
  const IdleClock::Clock::time_point t0{};
  IdleClock clock(60s, 5s, t0);
  for (auto t = t0; t <= t0 + 61s; t += 100ms) clock.polled(t);  // a loop turning normally
  CHECK_FALSE(clock.idle(t0 + 2s, t0 + 61s));                    // an event 59 s ago
  CHECK(clock.idle(t0 + 1s, t0 + 61s));                          // 60 s ago
}

TEST_CASE("a stalled loop restarts every partition's idle time", "[idle]") {
  // A restore inside a rebalance callback held the loop for 90 s: events that arrived
  // meanwhile wait unseen in the consumer's queue, so the silence before the stall, and during
  // it, is not silence. Idle time counts again from the stall's end.
  const IdleClock::Clock::time_point t0{};
  IdleClock clock(60s, 5s, t0);
  clock.polled(t0);
  clock.polled(t0 + 90s);  // the first poll after the stall
  CHECK_FALSE(clock.idle(t0, t0 + 90s));
  CHECK_FALSE(clock.idle(t0, t0 + 149s));
  for (auto t = t0 + 90s; t <= t0 + 150s; t += 100ms) clock.polled(t);
  CHECK(clock.idle(t0, t0 + 150s));  // 60 s watched without an event
  // A pause below the stall bound (a slow commit) is not a stall.
  clock.polled(t0 + 154s);
  CHECK(clock.idle(t0, t0 + 154s));
}
