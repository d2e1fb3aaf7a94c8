// The persisted state format: the hand-written encoder against protobuf's own parser and
// serialiser, on randomised records that reach every field and both sides of every omission rule.
#include <catch2/catch.hpp>
#include <random>

#include "pqa/v1/pqa.pb.h"
#include "state_codec.h"

using namespace pqa;

namespace {

class RandomRecords {
 public:
  explicit RandomRecords(std::uint64_t seed) : rng_(seed) {}

  scorer::StoredAccount account() {
    scorer::StoredAccount stored;
    rollup::AccountState& a = stored.state;
    for (int i = 0, n = below(40); i < n; ++i)
      a.buckets.push_back({day(), static_cast<std::uint32_t>(1 + below(5000)), fixed(), fixed()});
    for (int i = 0, n = below(6); i < n; ++i) a.departments.push_back(text());
    for (int i = 0, n = a.departments.empty() ? 0 : below(30); i < n; ++i)
      a.department_days.push_back({day(), below(static_cast<int>(a.departments.size())),
                                   static_cast<std::uint32_t>(1 + below(90))});
    for (auto& f : a.fabric) f = maybe_zero(std::uniform_real_distribution<double>(0, 50)(rng_));
    a.fabric_as_of = time();
    a.last_activity = time();
    a.seats = maybe_zero(static_cast<double>(below(500)));
    a.seat_snapshot_seen = below(2) == 1;
    a.seat_limit = maybe_zero(static_cast<double>(below(900)));
    for (int i = 0, n = below(8); i < n; ++i)
      a.seat_deltas.push_back({day(), maybe_zero(static_cast<double>(below(21) - 10))});
    a.shared_assets = static_cast<std::uint64_t>(below(3)) * rng_();
    a.known_users = static_cast<std::uint64_t>(below(100000));
    for (int i = 0, n = below(5); i < n; ++i) a.traits.push_back(trait());
    a.band = static_cast<rollup::Band>(below(4));
    a.pattern = static_cast<rollup::Pattern>(below(5));
    // Routing: none published yet (records of builds before it), or any of the five.
    if (const int r = below(6); r < 5) a.routing = static_cast<rollup::Routing>(r);
    a.clock = time();
    stored.timer_due = below(3) == 0 ? rollup::kNever : time_value();
    if (below(2) == 1) a.expired_before = day();
    a.fit = maybe_zero(std::uniform_real_distribution<double>(0, 1)(rng_));
    a.segment = below(5) - 1;
    stored.model_version = below(3) == 0 ? "" : text();
    return stored;
  }

  rollup::UserState user() {
    rollup::UserState u;
    u.explicit_role = static_cast<rollup::Role>(below(5));
    u.did_admin_action = below(2) == 1;
    u.department = below(3) == 0 ? "" : text();
    u.usage = {maybe_zero(std::uniform_real_distribution<double>(0, 1e6)(rng_)), time()};
    u.last_active = time();
    u.role_as_of = time();
    u.department_as_of = time();
    u.booking = {day(), below(2) == 1, fixed(), fixed(), below(8) - 1};
    return u;
  }

  scorer::Identity identity() {
    return {rollup::AccountId(text(1)), below(4) == 0 ? 0 : time_value()};
  }

 private:
  int below(int n) { return static_cast<int>(rng_() % static_cast<std::uint64_t>(n)); }
  /// Zero in a third of the draws: proto3 omits zero scalars, so both sides are reached.
  double maybe_zero(double v) { return below(3) == 0 ? 0.0 : v; }
  rollup::Day day() { return below(4) == 0 ? 0 : below(80'000); }
  rollup::Fixed fixed() { return below(4) == 0 ? 0 : static_cast<rollup::Fixed>(rng_() >> 2); }
  rollup::TimeMs time_value() { return static_cast<rollup::TimeMs>(rng_() % 7'000'000'000'000); }
  rollup::TimeMs time() { return below(3) == 0 ? rollup::kNoTime : time_value(); }
  /// Up to 300 bytes: nested messages of 128 bytes or more need a two-byte length prefix.
  std::string text(int min_length = 0) {
    std::string s(static_cast<std::size_t>(min_length + (below(8) == 0 ? below(300) : below(12))),
                  'x');
    for (auto& c : s) c = static_cast<char>('a' + below(26));
    return s;
  }
  rollup::Trait trait() {
    switch (below(3)) {
      case 0:
        return {text(1), text(), time()};
      case 1:
        return {text(1), maybe_zero(std::uniform_real_distribution<double>(-1e6, 1e6)(rng_)),
                time()};
      default:
        return {text(1), below(2) == 1, time()};
    }
  }
  std::mt19937_64 rng_;
};

/// Parsed and re-serialised by protobuf, the bytes must come back unchanged.
template <typename Record>
std::string protobuf_reserialised(const std::string& bytes) {
  Record r;
  REQUIRE(r.ParseFromString(bytes));
  std::string again;
  REQUIRE(r.SerializeToString(&again));
  return again;
}

}  // namespace

TEST_CASE("the state encoder writes protobuf's own serialization, and decodes back", "[codec]") {
  RandomRecords random(2026);
  for (int i = 0; i < 2000; ++i) {
    const auto account = random.account();
    const auto bytes = scorer::encode(account);
    REQUIRE(protobuf_reserialised<v1::AccountStateRecord>(bytes) == bytes);
    REQUIRE(scorer::decode_account(bytes) == account);

    const auto user = random.user();
    const auto user_bytes = scorer::encode(user);
    REQUIRE(protobuf_reserialised<v1::UserStateRecord>(user_bytes) == user_bytes);
    REQUIRE(scorer::decode_user(user_bytes) == user);

    const auto identity = random.identity();
    const auto identity_bytes = scorer::encode(identity);
    REQUIRE(protobuf_reserialised<v1::IdentityRecord>(identity_bytes) == identity_bytes);
    REQUIRE(scorer::decode_identity(identity_bytes) == identity);
  }
}

TEST_CASE("an empty record encodes as protobuf's empty message", "[codec]") {
  const scorer::StoredAccount empty;
  const auto bytes = scorer::encode(empty);
  CHECK(protobuf_reserialised<v1::AccountStateRecord>(bytes) == bytes);
  CHECK(scorer::decode_account(bytes) == empty);
  const rollup::UserState user;
  CHECK(protobuf_reserialised<v1::UserStateRecord>(scorer::encode(user)) == scorer::encode(user));
  CHECK(scorer::decode_user(scorer::encode(user)) == user);
}

TEST_CASE("records of builds with one traits time give each trait that time", "[codec]") {
  // Before traits had a time each, an account record had one for all (field 13) and a user
  // record one for role and department (field 7).
  v1::AccountStateRecord account;
  account.set_traits_as_of_ms(1'000);
  auto* plan = account.add_traits();
  plan->set_name("plan");
  plan->set_string_value("team");
  auto* seats = account.add_traits();
  seats->set_name("seats");
  seats->set_number_value(12);
  seats->set_as_of_ms(2'000);  // a record of this build
  const auto decoded = scorer::decode_account(account.SerializeAsString());
  REQUIRE(decoded);
  REQUIRE(decoded->state.traits.size() == 2);
  CHECK(decoded->state.traits[0] == rollup::Trait{"plan", std::string("team"), 1'000});
  CHECK(decoded->state.traits[1] == rollup::Trait{"seats", 12.0, 2'000});

  v1::UserStateRecord user;
  user.set_traits_as_of_ms(3'000);
  user.set_department("eng");
  const auto u = scorer::decode_user(user.SerializeAsString());
  REQUIRE(u);
  CHECK(u->role_as_of == 3'000);
  CHECK(u->department_as_of == 3'000);
}

TEST_CASE("records keep the one traits time that builds before per-trait times read", "[codec]") {
  // Such a build, rolled back to or mixed in a rolling update, reads the latest trait time as
  // the account's, and a user's one time when role and department share it.
  scorer::StoredAccount stored;
  stored.state.traits = {{"employees", 250.0, 5'000}, {"plan", std::string("team"), 7'000}};
  v1::AccountStateRecord account;
  REQUIRE(account.ParseFromString(scorer::encode(stored)));
  CHECK(account.traits_as_of_ms() == 7'000);
  stored.state.traits.push_back({"seats", 3.0, rollup::kNoTime});  // from such a build's record
  REQUIRE(account.ParseFromString(scorer::encode(stored)));
  CHECK_FALSE(account.has_traits_as_of_ms());  // its time must decode as none
  CHECK(scorer::decode_account(scorer::encode(stored)) == stored);

  rollup::UserState user;
  user.role_as_of = user.department_as_of = 9'000;
  v1::UserStateRecord record;
  REQUIRE(record.ParseFromString(scorer::encode(user)));
  CHECK(record.traits_as_of_ms() == 9'000);
  CHECK_FALSE(record.has_role_as_of_ms());
  user.department_as_of = 9'500;
  REQUIRE(record.ParseFromString(scorer::encode(user)));
  CHECK_FALSE(record.has_traits_as_of_ms());
  CHECK(scorer::decode_user(scorer::encode(user)) == user);
}
