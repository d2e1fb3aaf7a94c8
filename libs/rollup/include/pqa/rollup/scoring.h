// The one scoring function and the state transitions that feed it. Pure: state, event and time
// come in as values; signals and the next timer come out as values.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pqa/rollup/config.h"
#include "pqa/rollup/event.h"
#include "pqa/rollup/state.h"
#include "pqa/rollup/types.h"

namespace pqa::rollup {

struct Components {
  double breadth = 0.0;  ///< each 0..1, before account-level decay
  double depth = 0.0;
  double fabric = 0.0;
  double fit = 0.0;
};

struct Driver {
  std::string_view name;  ///< static text, e.g. "breadth.departments", "fabric.commercial_intent"
  double points = 0.0;    ///< contribution to the 0..100 score
};

struct SeatMetrics {
  double provisioned_seats = 0.0;
  std::uint32_t active_users = 0;
  double fill_rate = 0.0;             ///< active users / provisioned seats (0..1)
  double seat_velocity = 0.0;         ///< net seats provisioned in the trailing window
  double seat_limit_proximity = 0.0;  ///< active users / seat limit; 0 if no limit known
  double seat_limit = 0.0;
};

/// A full evaluation of an account at one time.
struct Score {
  double score = 0.0;  ///< 0..100
  Components components;
  double decay = 1.0;       ///< account-level inactivity factor applied to behavioural components
  Band band = Band::kCold;  ///< after hysteresis and the single-user cap
  Routing routing = Routing::kNone;
  std::vector<Driver> drivers;  ///< top three, largest first
  SeatMetrics seats;
  Pattern pattern = Pattern::kNone;
  std::uint32_t active_departments = 0;
  bool single_user_activation = false;
  double expansion_potential = 0.0;
  std::string_view segment;  ///< name of the segment rule (lives as long as the Model)
};

enum class SignalKind : std::uint8_t {
  kThresholdCrossed,
  kSeatExpansion,
  kBreadthExpansion,
  kRoutingChanged,  ///< the routing changed while the band did not (docs/scoring.md §7)
};
inline constexpr std::size_t kSignalKindCount = 4;
std::string_view to_string(SignalKind k);
/// Every kind's name, in enum order: the one list that configuration and the relay check
/// signal kinds against.
const std::vector<std::string_view>& signal_kind_names();

/// A signal as the core produces it; ids and model version are stamped by the caller
/// (signal_id needs the triggering input's identity).
struct Signal {
  SignalKind kind = SignalKind::kThresholdCrossed;
  TimeMs event_time = 0;
  Score score;                                ///< the account's evaluation when the signal fired
  Band previous_band = Band::kCold;           ///< threshold_crossed
  Routing previous_routing = Routing::kNone;  ///< routing_changed
  std::string department;                     ///< breadth_expansion
};

/// What one transition produced.
struct Outcome {
  std::vector<Signal> signals;
  /// When the account must next be re-evaluated without new events (user activity expiring,
  /// seat-velocity window, decay crossing a band's lower edge); kNever if nothing is pending.
  TimeMs next_timer = kNever;
};

/// Applies a decoded track/identify/group event of `user` to its account.
/// `now` is the scoring clock (>= event.timestamp; the watermark in the service).
/// `user_is_new` tells whether the user had no state in this account before.
Outcome apply_event(const Model& model, AccountState& account, UserState& user, bool user_is_new,
                    const Event& event, TimeMs now);

/// Re-evaluates an account when its timer fires (or on demand): expires what has left its
/// window and publishes band / pattern transitions.
Outcome advance(const Model& model, AccountState& account, TimeMs now);

/// Recomputes what the account's traits determine (fit, segment). apply_event calls it when a
/// group call changes traits; call it for stored state when the model's parameters changed.
void refresh_trait_derived(const Model& model, AccountState& account);

/// Scores an account at time `now` without changing it (band hysteresis relative to the
/// published band).
Score evaluate(const Model& model, const AccountState& account, TimeMs now);

/// Building blocks of evaluate(), exposed for tests and documentation.
/// Band for `score` given the published band: up as soon as a threshold is reached, down only
/// once the score is `hysteresis` points below the lower edge of the band it is in.
Band band_with_hysteresis(const BandParams& bands, double score, Band previous);
/// Seed 000's seat-expansion table.
/// `previous`: the pattern published before; its thresholds are relaxed by
/// `pattern_hysteresis`, so that it is left only once the metrics are clearly past them.
Pattern classify_seats(const SeatParams& params, const SeatMetrics& metrics,
                       Pattern previous = Pattern::kNone);
/// Seed 002's routing (uses band, single-user flag and expansion potential of `score`).
/// `previous`: the routing published before, if any; leaving full sales takes expansion
/// potential `full_sales_hysteresis` below the threshold that entering it needs.
Routing route(const ModelConfig& config, const Score& score,
              std::optional<Routing> previous = std::nullopt);

/// A user's engagement (0..1) as of its last activity.
double user_engagement(const Model& model, const UserState& user);
/// A user's role weight (explicit role, else inferred from behaviour and engagement).
double role_weight(const Model& model, const UserState& user, Role* effective_role = nullptr);

}  // namespace pqa::rollup
