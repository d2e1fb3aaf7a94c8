// Exponentially decayed sums whose value does not depend on the order of additions.
#pragma once

#include <cmath>

#include "pqa/rollup/types.h"

namespace pqa::rollup {

/// exp(-ln2 * dt / half_life), the fraction of a quantity left after dt.
inline double decay_factor(TimeMs dt, double half_life_ms) {
  if (dt <= 0) return 1.0;
  return std::exp2(-static_cast<double>(dt) / half_life_ms);
}

/// Sum of weights w_i added at times t_i, valued at time T as  sum w_i * 2^(-(T - t_i)/h).
///
/// Stored as its value at `as_of` = the latest addition time, the landmark of forward decay
/// (Cormode et al., 2009). An addition later than the landmark moves the landmark forward; an
/// earlier (late-arriving) one is decayed to the landmark. Either way the represented sum is the
/// same, so the result is independent of arrival order up to floating-point rounding, and the
/// stored magnitude stays bounded (no overflowing exp(+lambda t) terms).
struct DecayedSum {
  double value = 0.0;
  TimeMs as_of = kNoTime;

  void add(double weight, TimeMs t, double half_life_ms) {
    if (as_of == kNoTime) {
      value = weight;
      as_of = t;
    } else if (t >= as_of) {
      value = value * decay_factor(t - as_of, half_life_ms) + weight;
      as_of = t;
    } else {
      value += weight * decay_factor(as_of - t, half_life_ms);
    }
  }
  /// The sum valued at time t (t >= as_of; earlier times return the landmark value).
  double at(TimeMs t, double half_life_ms) const {
    if (as_of == kNoTime) return 0.0;
    return value * decay_factor(t - as_of, half_life_ms);
  }
  bool operator==(const DecayedSum&) const = default;
};

}  // namespace pqa::rollup
