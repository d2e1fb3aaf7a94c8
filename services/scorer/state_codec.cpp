#include "state_codec.h"

#include <cmath>
#include <limits>

#include "pqa/v1/pqa.pb.h"

namespace pqa::scorer {
namespace {

using rollup::kNoTime;
using rollup::TimeMs;

template <typename Msg>
void set_time(TimeMs t, Msg* msg, void (Msg::*setter)(std::int64_t)) {
  if (t != kNoTime) (msg->*setter)(t);
}
#define PQA_GET_TIME(msg, field) ((msg).has_##field() ? (msg).field() : kNoTime)

void to_record(const rollup::DecayedSum& d, v1::DecayedSumRecord* r) {
  r->set_value(d.value);
  if (d.as_of != kNoTime) r->set_as_of_ms(d.as_of);
}

rollup::DecayedSum from_record(const v1::DecayedSumRecord& r) {
  return {r.value(), PQA_GET_TIME(r, as_of_ms)};
}

void to_record(const rollup::Booking& b, v1::BookingRecord* r) {
  r->set_active(b.active);
  r->set_day(b.day);
  r->set_weight(b.weight);
  r->set_weighted_engagement(b.weighted_engagement);
  r->set_department(b.department);
}

rollup::Booking from_record(const v1::BookingRecord& r) {
  return {r.day(), r.active(), r.weight(), r.weighted_engagement(), r.department()};
}

void to_record(const rollup::Trait& t, v1::TraitRecord* r) {
  r->set_name(t.name);
  if (const auto* s = std::get_if<std::string>(&t.value)) r->set_string_value(*s);
  if (const auto* d = std::get_if<double>(&t.value)) r->set_number_value(*d);
  if (const auto* b = std::get_if<bool>(&t.value)) r->set_bool_value(*b);
}

rollup::Trait from_record(const v1::TraitRecord& r) {
  switch (r.value_case()) {
    case v1::TraitRecord::kNumberValue:
      return {r.name(), r.number_value()};
    case v1::TraitRecord::kBoolValue:
      return {r.name(), r.bool_value()};
    default:
      return {r.name(), r.string_value()};
  }
}

template <typename Msg>
std::string serialize(const Msg& m) {
  std::string out;
  m.SerializeToString(&out);
  return out;
}

void buckets_to_record(const rollup::AccountState& a, v1::AccountStateRecord& r) {
  for (const auto& b : a.buckets) {
    auto* rb = r.add_buckets();
    rb->set_day(b.day);
    rb->set_users(b.users);
    rb->set_weight(b.weight);
    rb->set_weighted_engagement(b.weighted_engagement);
  }
  for (const auto& d : a.department_days) {
    auto* rd = r.add_department_days();
    rd->set_day(d.day);
    rd->set_department(d.department);
    rd->set_users(d.users);
  }
}

void buckets_from_record(const v1::AccountStateRecord& r, rollup::AccountState& a) {
  for (const auto& rb : r.buckets())
    a.buckets.push_back({rb.day(), rb.users(), rb.weight(), rb.weighted_engagement()});
  for (const auto& d : r.department_days())
    a.department_days.push_back({d.day(), d.department(), d.users()});
}

// Bounds for stored values: a record outside them is corrupt (or not ours), and is rejected
// rather than fed into arithmetic that could overflow.
constexpr std::int64_t kMinTime = 0;                  // 1970
constexpr std::int64_t kMaxTime = 7'258'118'400'000;  // 2200
constexpr std::int32_t kMaxDay = 80'000;              // ~2189
bool time_ok(std::int64_t t) {
  return t >= kMinTime && t <= kMaxTime;
}
bool day_ok(std::int32_t d) {
  return d >= 0 && d <= kMaxDay;
}
bool number_ok(double v) {
  return std::isfinite(v) && std::abs(v) <= 1e15;
}
bool fixed_ok(std::int64_t v) {
  return v >= 0 && v <= (std::int64_t{1} << 62);
}

bool account_record_ok(const v1::AccountStateRecord& r) {
  for (const auto& b : r.buckets())
    if (!day_ok(b.day()) || b.users() == 0 || !fixed_ok(b.weight()) ||
        !fixed_ok(b.weighted_engagement()))
      return false;
  for (const auto& d : r.department_days())
    if (!day_ok(d.day()) || d.users() == 0) return false;
  for (const auto& d : r.seat_deltas())
    if (!day_ok(d.day()) || !number_ok(d.delta())) return false;
  for (double f : r.fabric())
    if (!number_ok(f) || f < 0) return false;
  for (auto t : {r.has_fabric_as_of_ms() ? r.fabric_as_of_ms() : 0,
                 r.has_last_activity_ms() ? r.last_activity_ms() : 0,
                 r.has_traits_as_of_ms() ? r.traits_as_of_ms() : 0,
                 r.has_clock_ms() ? r.clock_ms() : 0, r.has_timer_due_ms() ? r.timer_due_ms() : 0})
    if (!time_ok(t)) return false;
  if (r.has_expired_before() && !day_ok(r.expired_before())) return false;
  return number_ok(r.seats()) && number_ok(r.seat_limit()) && number_ok(r.fit());
}

bool user_record_ok(const v1::UserStateRecord& r) {
  return number_ok(r.usage().value()) &&
         (!r.usage().has_as_of_ms() || time_ok(r.usage().as_of_ms())) &&
         (!r.has_last_active_ms() || time_ok(r.last_active_ms())) &&
         (!r.has_traits_as_of_ms() || time_ok(r.traits_as_of_ms())) && day_ok(r.booking().day()) &&
         fixed_ok(r.booking().weight()) && fixed_ok(r.booking().weighted_engagement());
}

}  // namespace

std::string encode(const StoredAccount& stored) {
  const rollup::AccountState& a = stored.state;
  v1::AccountStateRecord r;
  buckets_to_record(a, r);
  for (const auto& d : a.departments) r.add_departments(d);
  for (double f : a.fabric) r.add_fabric(f);
  set_time(a.fabric_as_of, &r, &v1::AccountStateRecord::set_fabric_as_of_ms);
  set_time(a.last_activity, &r, &v1::AccountStateRecord::set_last_activity_ms);
  r.set_seats(a.seats);
  r.set_seat_snapshot_seen(a.seat_snapshot_seen);
  r.set_seat_limit(a.seat_limit);
  for (const auto& d : a.seat_deltas) {
    auto* rd = r.add_seat_deltas();
    rd->set_day(d.day);
    rd->set_delta(d.delta);
  }
  r.set_shared_assets(a.shared_assets);
  r.set_known_users(a.known_users);
  for (const auto& t : a.traits) to_record(t, r.add_traits());
  set_time(a.traits_as_of, &r, &v1::AccountStateRecord::set_traits_as_of_ms);
  r.set_band(static_cast<std::uint32_t>(a.band));
  r.set_pattern(static_cast<std::uint32_t>(a.pattern));
  set_time(a.clock, &r, &v1::AccountStateRecord::set_clock_ms);
  if (stored.timer_due != rollup::kNever) r.set_timer_due_ms(stored.timer_due);
  if (a.expired_before != std::numeric_limits<rollup::Day>::min())
    r.set_expired_before(a.expired_before);
  r.set_fit(a.fit);
  r.set_segment(a.segment);
  return serialize(r);
}

std::optional<StoredAccount> decode_account(std::string_view bytes) {
  v1::AccountStateRecord r;
  if (!r.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return std::nullopt;
  if (r.fabric_size() != 0 && r.fabric_size() != static_cast<int>(rollup::kFabricCategoryCount))
    return std::nullopt;
  if (!account_record_ok(r)) return std::nullopt;
  if (r.departments_size() > static_cast<int>(rollup::kMaxDepartments)) return std::nullopt;
  for (const auto& d : r.department_days())
    if (d.department() < 0 || d.department() >= r.departments_size()) return std::nullopt;
  if (r.band() > static_cast<std::uint32_t>(rollup::Band::kHot) ||
      r.pattern() > static_cast<std::uint32_t>(rollup::Pattern::kContracting))
    return std::nullopt;
  StoredAccount stored;
  rollup::AccountState& a = stored.state;
  buckets_from_record(r, a);
  a.departments.assign(r.departments().begin(), r.departments().end());
  for (int i = 0; i < r.fabric_size(); ++i) a.fabric[static_cast<std::size_t>(i)] = r.fabric(i);
  a.fabric_as_of = PQA_GET_TIME(r, fabric_as_of_ms);
  a.last_activity = PQA_GET_TIME(r, last_activity_ms);
  a.seats = r.seats();
  a.seat_snapshot_seen = r.seat_snapshot_seen();
  a.seat_limit = r.seat_limit();
  for (const auto& d : r.seat_deltas()) a.seat_deltas.push_back({d.day(), d.delta()});
  a.shared_assets = r.shared_assets();
  a.known_users = r.known_users();
  for (const auto& t : r.traits()) a.traits.push_back(from_record(t));
  a.traits_as_of = PQA_GET_TIME(r, traits_as_of_ms);
  a.band = static_cast<rollup::Band>(r.band());
  a.pattern = static_cast<rollup::Pattern>(r.pattern());
  a.clock = PQA_GET_TIME(r, clock_ms);
  stored.timer_due = r.has_timer_due_ms() ? r.timer_due_ms() : rollup::kNever;
  if (r.has_expired_before()) a.expired_before = r.expired_before();
  a.fit = r.fit();
  a.segment = r.segment();
  return stored;
}

std::string encode(const rollup::UserState& u) {
  v1::UserStateRecord r;
  r.set_explicit_role(static_cast<std::uint32_t>(u.explicit_role));
  r.set_did_admin_action(u.did_admin_action);
  r.set_department(u.department);
  to_record(u.usage, r.mutable_usage());
  set_time(u.last_active, &r, &v1::UserStateRecord::set_last_active_ms);
  to_record(u.booking, r.mutable_booking());
  set_time(u.traits_as_of, &r, &v1::UserStateRecord::set_traits_as_of_ms);
  return serialize(r);
}

std::optional<rollup::UserState> decode_user(std::string_view bytes) {
  v1::UserStateRecord r;
  if (!r.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return std::nullopt;
  if (r.explicit_role() > static_cast<std::uint32_t>(rollup::Role::kBillingOwner) ||
      !user_record_ok(r))
    return std::nullopt;
  rollup::UserState u;
  u.explicit_role = static_cast<rollup::Role>(r.explicit_role());
  u.did_admin_action = r.did_admin_action();
  u.department = r.department();
  u.usage = from_record(r.usage());
  u.last_active = PQA_GET_TIME(r, last_active_ms);
  u.booking = from_record(r.booking());
  u.traits_as_of = PQA_GET_TIME(r, traits_as_of_ms);
  return u;
}

std::string encode(const Identity& i) {
  v1::IdentityRecord r;
  r.set_account_id(i.account.str());
  r.set_as_of_ms(i.as_of);
  return serialize(r);
}

std::optional<Identity> decode_identity(std::string_view bytes) {
  v1::IdentityRecord r;
  if (!r.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())) || r.account_id().empty())
    return std::nullopt;
  return Identity{rollup::AccountId(r.account_id()), r.as_of_ms()};
}

namespace keys {

void account(std::string& out, std::string_view account_id) {
  out.assign(1, kAccount);
  out.append(account_id);
}

void user(std::string& out, std::string_view account_id, std::string_view user_id) {
  out.assign(1, kUser);
  auto n = static_cast<std::uint32_t>(account_id.size());
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((n >> shift) & 0xFF));
  out.append(account_id);
  out.append(user_id);
}

void identity(std::string& out, std::string_view user_id) {
  out.assign(1, kIdentity);
  out.append(user_id);
}

std::string account(std::string_view account_id) {
  std::string k;
  account(k, account_id);
  return k;
}

std::string user(std::string_view account_id, std::string_view user_id) {
  std::string k;
  user(k, account_id, user_id);
  return k;
}

std::string identity(std::string_view user_id) {
  std::string k;
  identity(k, user_id);
  return k;
}

std::string meta(std::string_view name) {
  std::string k(1, kMeta);
  k.append(name);
  return k;
}

}  // namespace keys
}  // namespace pqa::scorer
