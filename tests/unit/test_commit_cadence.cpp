// The streaming service's commit cadence: the configured interval, or the catch-up one while
// the input is far behind.
#include <catch2/catch.hpp>

#include "commit_cadence.h"

using pqa::scorer::CatchUpOptions;
using pqa::scorer::CommitCadence;
using Change = CommitCadence::Change;
using std::chrono::milliseconds;

TEST_CASE("far behind, the service commits at the catch-up interval; caught up, at its own",
          "[commit-cadence]") {
  CommitCadence cadence(80, CatchUpOptions{50'000, 1'000});
  CHECK(cadence.interval() == milliseconds(80));
  CHECK(cadence.observe_lag(0) == Change::kNone);
  CHECK(cadence.observe_lag(49'999) == Change::kNone);
  CHECK(cadence.interval() == milliseconds(80));
  CHECK(cadence.observe_lag(50'000) == Change::kEntered);
  CHECK(cadence.catching_up());
  CHECK(cadence.interval() == milliseconds(1'000));
  CHECK(cadence.observe_lag(1'000'000) == Change::kNone);
  CHECK(cadence.observe_lag(0) == Change::kLeft);
  CHECK_FALSE(cadence.catching_up());
  CHECK(cadence.interval() == milliseconds(80));
}

TEST_CASE("a lag hovering at the threshold does not flip the interval at every turn",
          "[commit-cadence]") {
  CommitCadence cadence(80, CatchUpOptions{50'000, 1'000});
  REQUIRE(cadence.observe_lag(50'000) == Change::kEntered);
  // Leaving takes the lag below half the threshold.
  for (std::int64_t lag : {49'999, 30'000, 25'000, 50'001, 25'000})
    CHECK(cadence.observe_lag(lag) == Change::kNone);
  CHECK(cadence.interval() == milliseconds(1'000));
  CHECK(cadence.observe_lag(24'999) == Change::kLeft);
  for (std::int64_t lag : {24'999, 49'999, 30'000})
    CHECK(cadence.observe_lag(lag) == Change::kNone);
  CHECK(cadence.interval() == milliseconds(80));
}

TEST_CASE("catching up ends when the lag is below half the threshold, an odd one too",
          "[commit-cadence]") {
  CommitCadence cadence(80, CatchUpOptions{1'001, 1'000});
  REQUIRE(cadence.observe_lag(1'001) == Change::kEntered);
  CHECK(cadence.observe_lag(501) == Change::kNone);  // 2 x 501 > 1001
  CHECK(cadence.observe_lag(500) == Change::kLeft);  // 2 x 500 < 1001
}

TEST_CASE("catch_up.lag_events 0 keeps the configured interval, however far behind",
          "[commit-cadence]") {
  CommitCadence cadence(80, CatchUpOptions{0, 1'000});
  CHECK(cadence.observe_lag(100'000'000) == Change::kNone);
  CHECK_FALSE(cadence.catching_up());
  CHECK(cadence.interval() == milliseconds(80));
}
