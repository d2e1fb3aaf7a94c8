#include "state_codec.h"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <variant>

#include "pqa/rollup/event.h"
#include "pqa/v1/pqa.pb.h"
#include "state_store.h"

namespace pqa::scorer {
namespace {

using rollup::kNoTime;
using rollup::TimeMs;

#define PQA_GET_TIME(msg, field) ((msg).has_##field() ? (msg).field() : kNoTime)

rollup::DecayedSum from_record(const v1::DecayedSumRecord& r) {
  return {r.value(), PQA_GET_TIME(r, as_of_ms)};
}

rollup::Booking from_record(const v1::BookingRecord& r) {
  return {r.day(), r.active(), r.weight(), r.weighted_engagement(), r.department()};
}

/// `as_of`: the trait's time when the record has none (records of earlier builds).
rollup::Trait from_record(const v1::TraitRecord& r, TimeMs as_of) {
  if (r.has_as_of_ms()) as_of = r.as_of_ms();
  switch (r.value_case()) {
    case v1::TraitRecord::kNumberValue:
      return {r.name(), r.number_value(), as_of};
    case v1::TraitRecord::kBoolValue:
      return {r.name(), r.bool_value(), as_of};
    default:
      return {r.name(), r.string_value(), as_of};
  }
}

/// Writes the protobuf wire format of the v1 records directly, field by field in field-number
/// order with proto3's omission rules, which is byte for byte what SerializeToString produces
/// for the same record (the test "the state encoder writes protobuf's own serialization"
/// checks it by re-serialising with protobuf). Why not build the generated messages and
/// serialise them: with many accounts nearly every event leads to a record write, and building
/// a message (one allocation per nested record) made encoding an account 4-5x slower
/// (BM_EncodeAccount, bench/RESULTS.md section 2).
///
/// Bytes go through a raw cursor into a buffer grown ahead of it (a byte-wise push_back was
/// 2-3x slower: fixed-point weights are 5-9 byte varints).
class WireWriter {
 public:
  explicit WireWriter(std::size_t expected_bytes) { buffer_.resize(expected_bytes); }
  /// The encoded record.
  std::string take() && {
    buffer_.resize(size_);
    return std::move(buffer_);
  }

  void varint(std::uint64_t v) {
    char* const start = room(10);
    char* p = start;
    while (v >= 0x80) {
      *p++ = static_cast<char>(v | 0x80);
      v >>= 7;
    }
    *p++ = static_cast<char>(v);
    size_ += static_cast<std::size_t>(p - start);
  }
  void tag(int field, int wire_type) { varint(static_cast<std::uint64_t>(field) << 3 | wire_type); }

  // Singular proto3 fields: omitted when zero (doubles: when all bits are zero).
  void uint_field(int field, std::uint64_t v) {
    if (v != 0) always_uint(field, v);
  }
  void int_field(int field, std::int64_t v) { uint_field(field, static_cast<std::uint64_t>(v)); }
  void bool_field(int field, bool v) { uint_field(field, v ? 1 : 0); }
  void double_field(int field, double v) {
    if (std::bit_cast<std::uint64_t>(v) != 0) always_double(field, v);
  }
  void string_field(int field, std::string_view v) {
    if (!v.empty()) always_string(field, v);
  }

  // Fields with presence (`optional`, oneof members, repeated elements): written whatever
  // their value. Negative integers are 10-byte varints (sign-extended), as protobuf writes them.
  void always_uint(int field, std::uint64_t v) {
    tag(field, kVarint);
    varint(v);
  }
  void always_int(int field, std::int64_t v) { always_uint(field, static_cast<std::uint64_t>(v)); }
  void always_double(int field, double v) {
    tag(field, kFixed64);
    fixed64(std::bit_cast<std::uint64_t>(v));
  }
  void always_string(int field, std::string_view v) {
    tag(field, kLengthDelimited);
    varint(v.size());
    std::memcpy(room(v.size()), v.data(), v.size());
    size_ += v.size();
  }
  void time_field(int field, TimeMs t) {
    if (t != kNoTime) always_int(field, t);
  }
  void packed_doubles(int field, const double* values, std::size_t n) {
    if (n == 0) return;
    tag(field, kLengthDelimited);
    varint(8 * n);
    for (std::size_t i = 0; i < n; ++i) fixed64(std::bit_cast<std::uint64_t>(values[i]));
  }

  /// A nested message: `write` fills it; its length prefix is fixed up afterwards (one byte
  /// reserved, the content moved in the rare case that it is 128 bytes or longer).
  template <typename Fn>
  void message(int field, Fn&& write) {
    tag(field, kLengthDelimited);
    const std::size_t at = size_;
    ++size_;
    write();
    const std::size_t length = size_ - at - 1;
    if (length < 0x80) {
      buffer_[at] = static_cast<char>(length);
      return;
    }
    std::size_t extra = 0;  // bytes the prefix needs beyond the one reserved
    for (std::size_t l = length >> 7; l != 0; l >>= 7) ++extra;
    room(extra);
    std::memmove(buffer_.data() + at + 1 + extra, buffer_.data() + at + 1, length);
    const std::size_t end = size_ + extra;
    size_ = at;
    varint(length);
    size_ = end;
  }

 private:
  static constexpr int kVarint = 0, kFixed64 = 1, kLengthDelimited = 2;
  void fixed64(std::uint64_t v) {
    char* p = room(8);
    for (int i = 0; i < 8; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
    size_ += 8;
  }
  /// Where the next `n` bytes go, growing the buffer (doubling) if they do not fit. Growth is
  /// kept out of line so that the common path inlines into every field write.
  char* room(std::size_t n) {
    if (size_ + n > buffer_.size()) [[unlikely]]
      grow(n);
    return buffer_.data() + size_;
  }
  [[gnu::noinline]] void grow(std::size_t n) {
    buffer_.resize(std::max(2 * buffer_.size(), size_ + n));
  }
  std::string buffer_;  ///< bytes [0, size_) are written; the rest is room
  std::size_t size_ = 0;
};

void write_decayed_sum(WireWriter& w, const rollup::DecayedSum& d) {
  w.double_field(1, d.value);
  w.time_field(2, d.as_of);
}

void write_booking(WireWriter& w, const rollup::Booking& b) {
  w.bool_field(1, b.active);
  w.int_field(2, b.day);
  w.int_field(3, b.weight);
  w.int_field(4, b.weighted_engagement);
  w.int_field(5, b.department);
}

/// Field 13, the one traits time of builds before per-trait times: the latest of them, so that
/// such a build reads a record of this one as it would its own. Written only when every trait
/// has a time: decoding gives a trait without one field 13's, which must then be absent.
TimeMs legacy_traits_as_of(const std::vector<rollup::Trait>& traits) {
  TimeMs latest = kNoTime;
  for (const auto& t : traits) {
    if (t.as_of == kNoTime) return kNoTime;
    latest = std::max(latest, t.as_of);
  }
  return latest;
}

void write_trait(WireWriter& w, const rollup::Trait& t) {
  w.string_field(1, t.name);
  if (const auto* s = std::get_if<std::string>(&t.value)) w.always_string(2, *s);
  if (const auto* d = std::get_if<double>(&t.value)) w.always_double(3, *d);
  if (const auto* b = std::get_if<bool>(&t.value)) w.always_uint(4, *b ? 1 : 0);
  w.time_field(5, t.as_of);
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
  for (const auto& t : r.traits())
    if (t.has_as_of_ms() && !time_ok(t.as_of_ms())) return false;
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
         (!r.has_traits_as_of_ms() || time_ok(r.traits_as_of_ms())) &&
         (!r.has_role_as_of_ms() || time_ok(r.role_as_of_ms())) &&
         (!r.has_department_as_of_ms() || time_ok(r.department_as_of_ms())) &&
         day_ok(r.booking().day()) && fixed_ok(r.booking().weight()) &&
         fixed_ok(r.booking().weighted_engagement());
}

}  // namespace

std::string encode(const StoredAccount& stored) {
  const rollup::AccountState& a = stored.state;
  WireWriter w(64 + stored.model_version.size() + 40 * a.buckets.size() +
               24 * a.department_days.size() + 8 * a.fabric.size());
  for (const auto& b : a.buckets)
    w.message(1, [&] {
      w.int_field(1, b.day);
      w.uint_field(2, b.users);
      w.int_field(3, b.weight);
      w.int_field(4, b.weighted_engagement);
    });
  for (const auto& d : a.departments) w.always_string(2, d);
  w.packed_doubles(3, a.fabric.data(), a.fabric.size());
  w.time_field(4, a.fabric_as_of);
  w.time_field(5, a.last_activity);
  w.double_field(6, a.seats);
  w.bool_field(7, a.seat_snapshot_seen);
  w.double_field(8, a.seat_limit);
  for (const auto& d : a.seat_deltas)
    w.message(9, [&] {
      w.int_field(1, d.day);
      w.double_field(2, d.delta);
    });
  w.uint_field(10, a.shared_assets);
  w.uint_field(11, a.known_users);
  for (const auto& t : a.traits) w.message(12, [&] { write_trait(w, t); });
  w.time_field(13, legacy_traits_as_of(a.traits));
  w.uint_field(14, static_cast<std::uint32_t>(a.band));
  w.uint_field(15, static_cast<std::uint32_t>(a.pattern));
  w.time_field(16, a.clock);
  if (stored.timer_due != rollup::kNever) w.always_int(17, stored.timer_due);
  w.double_field(18, a.fit);
  w.int_field(19, a.segment);
  for (const auto& d : a.department_days)
    w.message(20, [&] {
      w.int_field(1, d.day);
      w.int_field(2, d.department);
      w.uint_field(3, d.users);
    });
  if (a.expired_before != std::numeric_limits<rollup::Day>::min())
    w.always_int(21, a.expired_before);
  w.string_field(22, stored.model_version);
  if (a.routing) w.always_uint(23, static_cast<std::uint32_t>(*a.routing));
  return std::move(w).take();
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
      r.pattern() > static_cast<std::uint32_t>(rollup::Pattern::kContracting) ||
      r.routing() > static_cast<std::uint32_t>(rollup::Routing::kEnablement))
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
  for (const auto& t : r.traits())
    a.traits.push_back(from_record(t, PQA_GET_TIME(r, traits_as_of_ms)));
  a.band = static_cast<rollup::Band>(r.band());
  a.pattern = static_cast<rollup::Pattern>(r.pattern());
  if (r.has_routing()) a.routing = static_cast<rollup::Routing>(r.routing());
  a.clock = PQA_GET_TIME(r, clock_ms);
  stored.timer_due = r.has_timer_due_ms() ? r.timer_due_ms() : rollup::kNever;
  if (r.has_expired_before()) a.expired_before = r.expired_before();
  a.fit = r.fit();
  a.segment = r.segment();
  stored.model_version = r.model_version();
  return stored;
}

std::string encode(const rollup::UserState& u) {
  WireWriter w(96 + u.department.size());
  w.uint_field(1, static_cast<std::uint32_t>(u.explicit_role));
  w.bool_field(2, u.did_admin_action);
  w.string_field(3, u.department);
  w.message(4, [&] { write_decayed_sum(w, u.usage); });
  w.time_field(5, u.last_active);
  w.message(6, [&] { write_booking(w, u.booking); });
  // One time for both, as builds before per-trait times wrote it, when they are the same (an
  // identify with both, the usual case): such a build reads it right, this one exactly.
  if (u.role_as_of == u.department_as_of) {
    w.time_field(7, u.role_as_of);
  } else {
    w.time_field(8, u.role_as_of);
    w.time_field(9, u.department_as_of);
  }
  return std::move(w).take();
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
  // One time for both (field 7) or one each (8, 9): see encode().
  const bool one_time = !r.has_role_as_of_ms() && !r.has_department_as_of_ms();
  u.role_as_of = one_time ? PQA_GET_TIME(r, traits_as_of_ms) : PQA_GET_TIME(r, role_as_of_ms);
  u.department_as_of =
      one_time ? PQA_GET_TIME(r, traits_as_of_ms) : PQA_GET_TIME(r, department_as_of_ms);
  return u;
}

std::string encode(const Identity& i) {
  WireWriter w(24 + i.account.str().size());
  w.string_field(1, i.account.str());
  w.int_field(2, i.as_of);
  return std::move(w).take();
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

std::optional<std::int64_t> read_meta_integer(StateStore& store, std::string_view name,
                                              std::string_view what) {
  const auto value = store.get(keys::meta(name));
  if (!value) return std::nullopt;
  std::int64_t n = 0;
  const auto [end, ec] = std::from_chars(value->data(), value->data() + value->size(), n);
  if (ec != std::errc() || end != value->data() + value->size())
    throw StoreError("corrupt state record: meta '" + std::string(name) + "' is not " +
                     std::string(what) + ": '" + rollup::quote_input(*value) + "'");
  return n;
}

}  // namespace pqa::scorer
