// Forward-decayed sums: half-life arithmetic and independence from arrival order.
#include <algorithm>
#include <catch2/catch.hpp>
#include <random>

#include "pqa/rollup/decay.h"

using namespace pqa::rollup;

namespace {
constexpr double kHalfLife = 14.0 * kMsPerDay;
}

TEST_CASE("a decayed sum halves every half-life", "[decay]") {
  DecayedSum s;
  s.add(8.0, 0, kHalfLife);
  CHECK(s.at(0, kHalfLife) == Approx(8.0));
  CHECK(s.at(static_cast<TimeMs>(kHalfLife), kHalfLife) == Approx(4.0));
  CHECK(s.at(static_cast<TimeMs>(3 * kHalfLife), kHalfLife) == Approx(1.0));
}

TEST_CASE("decayed sums do not depend on arrival order", "[decay][late]") {
  std::mt19937_64 rng(7);
  std::vector<std::pair<double, TimeMs>> additions;
  for (int i = 0; i < 500; ++i)
    additions.emplace_back(1.0 + static_cast<double>(rng() % 5),
                           static_cast<TimeMs>(rng() % (60 * kMsPerDay)));
  auto sum_in = [&](const std::vector<std::pair<double, TimeMs>>& order) {
    DecayedSum s;
    for (auto [w, t] : order) s.add(w, t, kHalfLife);
    return s.at(61 * kMsPerDay, kHalfLife);
  };
  auto sorted = additions;
  std::sort(sorted.begin(), sorted.end(), [](auto& a, auto& b) { return a.second < b.second; });
  auto reversed = sorted;
  std::reverse(reversed.begin(), reversed.end());
  const double in_order = sum_in(sorted);
  CHECK(sum_in(additions) == Approx(in_order).epsilon(1e-9));
  CHECK(sum_in(reversed) == Approx(in_order).epsilon(1e-9));
  // And it equals the closed form sum w * 2^(-(T - t)/h).
  double closed = 0.0;
  for (auto [w, t] : additions)
    closed += w * std::exp2(-(61.0 * kMsPerDay - static_cast<double>(t)) / kHalfLife);
  CHECK(in_order == Approx(closed).epsilon(1e-9));
}

TEST_CASE("decayed sums stay finite over decades", "[decay]") {
  DecayedSum s;
  for (int year = 0; year < 80; ++year) s.add(1.0, year * 365 * kMsPerDay, kHalfLife);
  const double v = s.at(80LL * 365 * kMsPerDay, kHalfLife);
  CHECK(std::isfinite(v));
  // The landmark moves with each addition, so nothing overflows, and the value is still the
  // closed form: the newest additions' weights, each halved once per 14 days since.
  double closed = 0.0;
  for (int year = 0; year < 80; ++year)
    closed += std::exp2(-static_cast<double>((80 - year) * 365 * kMsPerDay) / kHalfLife);
  REQUIRE(closed > 1e-9);  // not vacuous: the last year's addition still weighs ~1e-8
  CHECK(v == Approx(closed).epsilon(1e-9));
}
