// A fast, deterministic generator of synthetic Segment-spec event streams: group, identify,
// track and page calls, one JSON object per line, handed to a sink in chunks of whole lines.
// Used by `pqa-gen` (bench/gen_events.cpp) and `pqa-scorer demo`. Standard library only.
//
// ---------------------------------------------------------------------------------------
// Model
// ---------------------------------------------------------------------------------------
// Accounts ("acc-000123") own users ("u-000123-00042" = account 123, user 42). Everything
// about an account (archetype, user count, traits, departments, roles) is a pure function of
// (--seed, account number), recomputed on demand, so memory does not grow with users. The
// only per-account state is the current seat count (4 bytes per account); the only per-user
// state is a compact open-addressing set of users that have already been introduced.
//
// Archetypes (share of accounts; all forced to "typical" by --users-per-account):
//   typical          55%  heavy-tailed user count, 1-3 departments, ~22% fabric events.
//   buying_committee  8%  3-8 users, one department each (3+ in total), an admin and a
//                         billing owner, billing / plan / contact-sales / terms views, SSO.
//   casual_volume    10%  20-200 users, all in one department, lightly and evenly used,
//                         usage events only.
//   single_champion   8%  one very active user (user 1) in an account with 10+ seats; the
//                         other seat holders never show up.
//   expanding         7%  Seat Added / Bulk Invite Sent / invites; the set of active users
//                         grows from 25% to 100% over the stream, and later users belong to
//                         new departments; seats climb towards seat_limit.
//   contracting       6%  Seat Removed / Account Removed User; activity falls to ~15% and
//                         the set of active users shrinks.
//   dormant           6%  normal activity until a point between 15% and 50% of the stream,
//                         then silent.
//
// Distributions:
//   * Account of each event: Zipf over activity ranks (exponent --zipf), sampled in O(1)
//     with rejection-inversion (Hormann & Derflinger); ranks map to account numbers through
//     a seeded affine permutation, so busy accounts are scattered over the id space. The
//     archetype then accepts or rejects the draw depending on stream progress (dormant,
//     expanding and contracting activity curves); a rejected draw is redrawn.
//   * User count: Pareto-like, 3 * U^(-1/1.2) (median ~5, a few accounts hit --max-users),
//     then shaped and capped by the archetype and by --max-users.
//   * User within an account: floor(n * U^k), skew k from 1.1 (committee) to 2 (typical),
//     so low-numbered users are the most active.
//   * Track calls are ~80% usage events ("Report Created", "Query Run", ...) and ~20%
//     account-fabric events with archetype-specific mixes. Administrative fabric events
//     (seats, bulk invites, SSO, SCIM, admin roles, adding/removing users) are done by
//     user 1, the account's first user: always an admin in committee, expanding and
//     contracting accounts, an admin or role-less elsewhere.
//     About 1% of calls are page calls (ignored by the scorer).
//   * "Seat Added"/"Seat Removed" carry {"seats":N} as a delta; seats stay in
//     1..seat_limit (an expanding account at its limit views plan comparison instead). After
//     a seat change the admin re-sends a group call with the new seats 30% of the time.
//   * Half of the track calls carry context.groupId; the others rely on the group call.
//   * A user's first appearance is preceded in file order by a group and an identify call
//     for that user (timestamps 2 ms and 1 ms before the event). ~60% of users have an
//     explicit role (admin, billing_owner, champion, member); every user has a department.
//
// Time: line i gets base time start + days * i / events plus a random offset below one
// line's share, so the stream is in order before disorder is added: ~5% of track/page
// calls are moved back by up to 10 minutes and ~0.1% arrive 1-3 days late. No timestamp
// is earlier than --start. Timestamps are ISO-8601 UTC with milliseconds and 'Z'.
//
// Poison (--poison-rate F): each line is, with probability F, an invalid line instead:
// malformed JSON, wrong types ("userId":123, string seats), missing timestamp, bad
// timestamp ("2026-13-45..."), missing event name, a line over 40 KiB, or a JSON value
// that is not an object. Valid lines keep their order guarantees around poison lines.
//
// Output is exactly --events lines, byte-identical for identical flags. messageIds are
// "m-<line number>", unique within a run.
//
// ---------------------------------------------------------------------------------------
// Flags
// ---------------------------------------------------------------------------------------
//   --events N              lines to write (default 1000000)
//   --accounts N            number of accounts (default 10000)
//   --users-per-account N   every account has exactly N users and archetype typical
//   --max-users N           cap on users per account (default 10000)
//   --zipf S                Zipf exponent of activity across accounts (default 1.1)
//   --seed S                random seed (default 42)
//   --days D                days spanned by the stream (default 60)
//   --start ISO             first timestamp, e.g. 2026-01-05T00:00:00Z (default)
//   --poison-rate F         fraction of invalid lines, 0..1 (default 0)
//   --help                  print this help
// Flags take "--flag value" or "--flag=value". Unknown flags or bad values: usage on
// stderr, exit status 2.

#include "pqa/synth/generator.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <numeric>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pqa::synth {
namespace {

using Sink = std::function<void(std::string_view)>;

constexpr std::int64_t kMsPerMinute = 60'000;
constexpr std::int64_t kMsPerDay = 86'400'000;

// ---------------------------------------------------------------------------------------
// Random numbers
// ---------------------------------------------------------------------------------------

constexpr std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

constexpr std::uint64_t mix(std::uint64_t a, std::uint64_t b) {
  return splitmix64(a ^ splitmix64(b + 0x632be59bd9b4e019ULL));
}

/// xoshiro256**: small, fast, and identical on every platform (unlike std distributions).
class Rng {
 public:
  explicit Rng(std::uint64_t seed) {
    for (auto& word : s_) {
      seed = splitmix64(seed);
      word = seed;
    }
  }

  std::uint64_t next() {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  /// Uniform in [0, 1).
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  bool chance(double p) { return uniform() < p; }

  /// Uniform in [0, n); n > 0.
  std::uint64_t below(std::uint64_t n) {
    const auto v = static_cast<std::uint64_t>(uniform() * static_cast<double>(n));
    return std::min(v, n - 1);
  }
  /// Uniform in [lo, hi].
  std::uint64_t range(std::uint64_t lo, std::uint64_t hi) { return lo + below(hi - lo + 1); }
  /// Log-uniform in [lo, hi]; lo >= 1.
  double log_uniform(double lo, double hi) { return lo * std::exp(uniform() * std::log(hi / lo)); }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::array<std::uint64_t, 4> s_{};
};

/// Zipf(n, s) over 1..n by rejection-inversion (Hormann & Derflinger 1996): O(1) time and
/// memory per sample, for any n, and any s >= 0 (s = 0 is uniform).
class ZipfSampler {
 public:
  ZipfSampler(std::uint64_t n, double s) : n_(static_cast<double>(n)), s_(s) {
    h_integral_x1_ = h_integral(1.5) - 1.0;
    h_integral_n_ = h_integral(n_ + 0.5);
    squeeze_ = 2.0 - h_integral_inverse(h_integral(2.5) - h(2.0));
  }

  std::uint64_t sample(Rng& rng) const {
    for (;;) {
      const double u = h_integral_n_ + rng.uniform() * (h_integral_x1_ - h_integral_n_);
      const double x = h_integral_inverse(u);
      const double k = std::clamp(std::floor(x + 0.5), 1.0, n_);
      if (k - x <= squeeze_ || u >= h_integral(k + 0.5) - h(k))
        return static_cast<std::uint64_t>(k);
    }
  }

 private:
  // log1p(x)/x and expm1(x)/x, with Taylor series near zero.
  static double helper1(double x) {
    return std::abs(x) > 1e-8 ? std::log1p(x) / x : 1 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x));
  }
  static double helper2(double x) {
    return std::abs(x) > 1e-8 ? std::expm1(x) / x : 1 + x * 0.5 * (1 + x / 3.0 * (1 + 0.25 * x));
  }
  double h(double x) const { return std::exp(-s_ * std::log(x)); }
  double h_integral(double x) const {
    const double log_x = std::log(x);
    return helper2((1.0 - s_) * log_x) * log_x;
  }
  double h_integral_inverse(double x) const {
    const double t = std::max(-1.0, x * (1.0 - s_));
    return std::exp(helper1(t) * x);
  }

  double n_, s_;
  double h_integral_x1_ = 0, h_integral_n_ = 0, squeeze_ = 0;
};

/// Bijection rank -> account number on [0, n): a*r + b mod n with gcd(a, n) = 1.
class AffinePermutation {
 public:
  AffinePermutation(std::uint64_t n, std::uint64_t seed) : n_(n) {
    a_ = splitmix64(seed) % n;
    while (std::gcd(a_, n_) != 1) a_ = (a_ + 1) % n_;
    b_ = splitmix64(seed + 1) % n;
  }
  // No overflow: both factors are below 1e8 (the cap on --accounts).
  std::uint64_t operator()(std::uint64_t r) const { return (a_ * r + b_) % n_; }

 private:
  std::uint64_t n_, a_ = 1, b_ = 0;
};

/// Set of 64-bit keys (never 0) with linear probing; 8 bytes per slot, load <= 1/2.
class KeySet {
 public:
  /// Returns true when `key` was not in the set yet.
  bool insert(std::uint64_t key) {
    if ((size_ + 1) * 2 > slots_.size()) grow();
    if (!place(slots_, key)) return false;
    ++size_;
    return true;
  }

 private:
  static bool place(std::vector<std::uint64_t>& slots, std::uint64_t key) {
    const std::size_t mask = slots.size() - 1;
    for (std::size_t i = splitmix64(key) & mask;; i = (i + 1) & mask) {
      if (slots[i] == key) return false;
      if (slots[i] == 0) {
        slots[i] = key;
        return true;
      }
    }
  }
  void grow() {
    std::vector<std::uint64_t> bigger(slots_.size() * 2, 0);
    for (std::uint64_t key : slots_)
      if (key != 0) place(bigger, key);
    slots_.swap(bigger);
  }

  std::vector<std::uint64_t> slots_ = std::vector<std::uint64_t>(1024, 0);
  std::size_t size_ = 0;
};

// ---------------------------------------------------------------------------------------
// Calendar (Howard Hinnant's civil-date algorithms)
// ---------------------------------------------------------------------------------------

constexpr std::int64_t days_from_civil(std::int64_t y, std::int64_t m, std::int64_t d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const std::int64_t yoe = y - era * 400;
  const std::int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const std::int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

struct Civil {
  std::int64_t year, month, day;
};

constexpr Civil civil_from_days(std::int64_t z) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const std::int64_t doe = z - era * 146097;
  const std::int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const std::int64_t mp = (5 * doy + 2) / 153;
  const std::int64_t d = doy - (153 * mp + 2) / 5 + 1;
  const std::int64_t m = mp < 10 ? mp + 3 : mp - 9;
  return {yoe + era * 400 + (m <= 2), m, d};
}

/// Reads `n` digits at `pos` (advancing it) into `out`.
bool read_digits(std::string_view s, std::size_t& pos, std::size_t n, std::int64_t& out) {
  if (pos + n > s.size()) return false;
  out = 0;
  for (std::size_t i = 0; i < n; ++i, ++pos) {
    if (s[pos] < '0' || s[pos] > '9') return false;
    out = out * 10 + (s[pos] - '0');
  }
  return true;
}

bool read_char(std::string_view s, std::size_t& pos, char c) {
  if (pos >= s.size() || s[pos] != c) return false;
  ++pos;
  return true;
}

/// Parses YYYY-MM-DD[THH:MM:SS[.mmm]][Z] (UTC) into ms since the epoch.
std::optional<std::int64_t> parse_iso(std::string_view s) {
  std::size_t pos = 0;
  std::int64_t y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0, ms = 0;
  if (!read_digits(s, pos, 4, y) || !read_char(s, pos, '-') || !read_digits(s, pos, 2, mo) ||
      !read_char(s, pos, '-') || !read_digits(s, pos, 2, d))
    return std::nullopt;
  if (read_char(s, pos, 'T')) {
    if (!read_digits(s, pos, 2, h) || !read_char(s, pos, ':') || !read_digits(s, pos, 2, mi) ||
        !read_char(s, pos, ':') || !read_digits(s, pos, 2, sec))
      return std::nullopt;
    if (read_char(s, pos, '.') && !read_digits(s, pos, 3, ms)) return std::nullopt;
  }
  read_char(s, pos, 'Z');
  if (pos != s.size() || y < 1970 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 59)
    return std::nullopt;
  const Civil back = civil_from_days(days_from_civil(y, mo, d));
  if (back.month != mo || back.day != d) return std::nullopt;  // e.g. February 30
  return ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * kMsPerMinute + sec * 1000 + ms;
}

// ---------------------------------------------------------------------------------------
// Output buffer
// ---------------------------------------------------------------------------------------

/// Lines are assembled in a large buffer and handed to the sink in ~1 MiB chunks.
class Out {
 public:
  explicit Out(const Sink& sink) : sink_(sink), buf_(kFlushAt + kMaxLine) {}

  void put(std::string_view s) {
    std::memcpy(buf_.data() + len_, s.data(), s.size());
    len_ += s.size();
  }
  void put(char c) { buf_[len_++] = c; }
  void put_uint(std::uint64_t v) {
    const auto res = std::to_chars(buf_.data() + len_, buf_.data() + buf_.size(), v);
    len_ = static_cast<std::size_t>(res.ptr - buf_.data());
  }
  /// Decimal with at least `width` digits, zero padded.
  void put_padded(std::uint64_t v, std::size_t width) {
    std::array<char, 24> tmp{};
    const auto res = std::to_chars(tmp.data(), tmp.data() + tmp.size(), v);
    const auto digits = static_cast<std::size_t>(res.ptr - tmp.data());
    for (std::size_t i = digits; i < width; ++i) put('0');
    put(std::string_view(tmp.data(), digits));
  }
  void put_two(std::int64_t v) {
    put(static_cast<char>('0' + v / 10));
    put(static_cast<char>('0' + v % 10));
  }
  void put_repeated(char c, std::size_t n) {
    std::memset(buf_.data() + len_, c, n);
    len_ += n;
  }
  void end_line() {
    put('\n');
    if (len_ >= kFlushAt) flush();
  }
  void flush() {
    if (len_ > 0) sink_(std::string_view(buf_.data(), len_));
    len_ = 0;
  }

  static constexpr std::size_t kMaxLine = 64 * 1024;  // no line is longer than this

 private:
  static constexpr std::size_t kFlushAt = 1 << 20;
  const Sink& sink_;
  std::vector<char> buf_;
  std::size_t len_ = 0;
};

/// Writes "YYYY-MM-DDTHH:MM:SS.mmmZ", caching the date part of the last day seen.
class TimeWriter {
 public:
  void write(Out& out, std::int64_t ms) {
    const std::int64_t day = ms >= 0 ? ms / kMsPerDay : -((-ms + kMsPerDay - 1) / kMsPerDay);
    if (day != cached_day_) cache(day);
    out.put(std::string_view(date_.data(), kDateChars));
    std::int64_t rest = ms - day * kMsPerDay;
    out.put_two(rest / 3'600'000);
    out.put(':');
    out.put_two(rest / kMsPerMinute % 60);
    out.put(':');
    out.put_two(rest / 1000 % 60);
    out.put('.');
    rest %= 1000;
    out.put(static_cast<char>('0' + rest / 100));
    out.put_two(rest % 100);
    out.put('Z');
  }

 private:
  void cache(std::int64_t day) {
    const Civil c = civil_from_days(day);
    set_digits(0, c.year, 4);
    set_digits(5, c.month, 2);
    set_digits(8, c.day, 2);
    cached_day_ = day;
  }
  void set_digits(std::size_t at, std::int64_t v, std::size_t width) {
    for (std::size_t i = width; i-- > 0; v /= 10) date_[at + i] = static_cast<char>('0' + v % 10);
  }
  static constexpr std::size_t kDateChars = 11;
  std::array<char, kDateChars> date_ = {'Y', 'Y', 'Y', 'Y', '-', 'M', 'M', '-', 'D', 'D', 'T'};
  std::int64_t cached_day_ = INT64_MIN;
};

// ---------------------------------------------------------------------------------------
// Vocabulary
// ---------------------------------------------------------------------------------------

constexpr std::array<std::string_view, 8> kUsageEvents = {
    "Report Created", "Dashboard Viewed", "Query Run",          "Document Edited",
    "Project Opened", "Export Completed", "Integration Synced", "Search Performed"};
constexpr std::array<std::string_view, 8> kDepartments = {
    "engineering", "marketing", "sales", "finance", "operations", "design", "support", "product"};
constexpr std::array<std::string_view, 8> kIndustries = {"software", "fintech",   "healthcare",
                                                         "retail",   "education", "manufacturing",
                                                         "media",    "logistics"};
constexpr std::array<std::string_view, 5> kPlans = {"free", "starter", "team", "business",
                                                    "enterprise"};
constexpr std::array<std::string_view, 4> kRoles = {"admin", "billing_owner", "champion", "member"};
constexpr std::array<std::string_view, 4> kPageNames = {"Pricing", "Home", "Docs", "Settings"};
constexpr std::array<std::string_view, 3> kClients = {"web", "desktop", "mobile"};

/// How a fabric event carries a quantity.
enum class Qty : std::uint8_t { kNone, kSeatsAdded, kSeatsRemoved, kInviteCount };

struct FabricEvent {
  std::string_view name;
  Qty qty;
  bool by_admin;  // performed by the account's admin (user 1)
};

enum Fab : std::uint8_t {
  kSeatAdded,
  kSeatRemoved,
  kBulkInvite,
  kUserInvited,
  kInviteSent,
  kAccountAddedUser,
  kAccountRemovedUser,
  kAdminRole,
  kSso,
  kScim,
  kBillingPage,
  kPlanComparison,
  kContactSales,
  kTermsPage,
  kAssetShared,
  kCommentAdded,
  kWorkspaceCreated,
  kSharedProject,
  kTemplatePublished,
  kFabCount
};

constexpr std::array<FabricEvent, kFabCount> kFabric = {{
    {"Seat Added", Qty::kSeatsAdded, true},
    {"Seat Removed", Qty::kSeatsRemoved, true},
    {"Bulk Invite Sent", Qty::kInviteCount, true},
    {"User Invited", Qty::kNone, false},
    {"Invite Sent", Qty::kNone, false},
    {"Account Added User", Qty::kNone, true},
    {"Account Removed User", Qty::kNone, true},
    {"Admin Role Assigned", Qty::kNone, true},
    {"SSO Configured", Qty::kNone, true},
    {"SCIM Connected", Qty::kNone, true},
    {"Billing Page Viewed", Qty::kNone, false},
    {"Plan Comparison Viewed", Qty::kNone, false},
    {"Contact Sales Clicked", Qty::kNone, false},
    {"Terms Page Viewed", Qty::kNone, false},
    {"Asset Shared", Qty::kNone, false},
    {"Comment Added", Qty::kNone, false},
    {"Workspace Created", Qty::kNone, false},
    {"Shared Project Created", Qty::kNone, false},
    {"Template Published", Qty::kNone, false},
}};

enum class Archetype : std::uint8_t {
  kTypical,
  kBuyingCommittee,
  kCasualVolume,
  kSingleChampion,
  kExpanding,
  kContracting,
  kDormant,
  kCount
};
constexpr std::size_t kArchetypes = static_cast<std::size_t>(Archetype::kCount);

/// Share of accounts per archetype, in percent, in enum order.
constexpr std::array<std::uint64_t, kArchetypes> kArchetypeShare = {55, 8, 10, 8, 7, 6, 6};

struct Weight {
  Fab event;
  std::uint32_t weight;
};

/// The behaviour of one archetype: fabric share, user skew and fabric event mix.
struct Behaviour {
  double fabric_rate;  // share of track calls that are fabric events
  double user_skew;    // k in floor(n * U^k); larger means fewer users do most of the work
  std::vector<Weight> mix;
  std::uint32_t total = 0;
};

std::vector<Weight> typical_mix() {
  return {
      {kUserInvited, 6},   {kInviteSent, 5},       {kAccountAddedUser, 3}, {kAccountRemovedUser, 1},
      {kSeatAdded, 2},     {kSeatRemoved, 1},      {kAdminRole, 1},        {kSso, 1},
      {kBillingPage, 2},   {kPlanComparison, 1},   {kTermsPage, 1},        {kAssetShared, 12},
      {kCommentAdded, 14}, {kWorkspaceCreated, 3}, {kSharedProject, 4},    {kTemplatePublished, 2}};
}

std::vector<Weight> committee_mix() {
  return {{kBillingPage, 10},  {kPlanComparison, 8}, {kContactSales, 5},     {kTermsPage, 4},
          {kSso, 2},           {kScim, 1},           {kAdminRole, 3},        {kAssetShared, 10},
          {kCommentAdded, 12}, {kSharedProject, 5},  {kWorkspaceCreated, 2}, {kUserInvited, 2}};
}

std::vector<Weight> champion_mix() {
  return {{kTemplatePublished, 3}, {kWorkspaceCreated, 2}, {kBillingPage, 1}, {kAssetShared, 1}};
}

std::vector<Weight> expanding_mix() {
  return {{kSeatAdded, 10},       {kBulkInvite, 5},   {kUserInvited, 10},     {kInviteSent, 8},
          {kAccountAddedUser, 8}, {kAdminRole, 1},    {kWorkspaceCreated, 3}, {kSharedProject, 4},
          {kAssetShared, 6},      {kCommentAdded, 6}, {kBillingPage, 2},      {kPlanComparison, 1}};
}

std::vector<Weight> contracting_mix() {
  return {{kSeatRemoved, 10},   {kAccountRemovedUser, 10}, {kBillingPage, 3},
          {kPlanComparison, 3}, {kCommentAdded, 2},        {kSeatAdded, 1}};
}

/// Behaviours indexed by archetype: {fabric share, user skew, fabric mix}.
std::vector<Behaviour> make_behaviours() {
  std::vector<Behaviour> b(kArchetypes);
  auto at = [&b](Archetype a) -> Behaviour& { return b[static_cast<std::size_t>(a)]; };
  at(Archetype::kTypical) = {0.22, 2.0, typical_mix()};
  at(Archetype::kBuyingCommittee) = {0.35, 1.1, committee_mix()};
  at(Archetype::kCasualVolume) = {0.0, 1.2, {}};
  at(Archetype::kSingleChampion) = {0.12, 1.0, champion_mix()};
  at(Archetype::kExpanding) = {0.30, 1.5, expanding_mix()};
  at(Archetype::kContracting) = {0.20, 2.0, contracting_mix()};
  at(Archetype::kDormant) = {0.15, 2.0, typical_mix()};
  for (auto& behaviour : b)
    for (const Weight& w : behaviour.mix) behaviour.total += w.weight;
  return b;
}

// ---------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------

constexpr std::uint64_t kMaxCount = 100'000'000;  // keeps (account, user) keys in 64 bits

bool parse_uint(std::string_view s, std::uint64_t& out) {
  const auto res = std::from_chars(s.data(), s.data() + s.size(), out);
  return res.ec == std::errc() && res.ptr == s.data() + s.size();
}

bool parse_double(std::string_view s, double& out) {
  const auto res = std::from_chars(s.data(), s.data() + s.size(), out);
  return res.ec == std::errc() && res.ptr == s.data() + s.size() && std::isfinite(out);
}

bool parse_count(std::string_view s, std::uint64_t& out, std::uint64_t lo) {
  return parse_uint(s, out) && out >= lo && out <= kMaxCount;
}

/// Applies one flag; false when the flag is unknown or its value is invalid.
bool set_option_impl(Options& o, std::string_view name, std::string_view value) {
  if (name == "--events") return parse_uint(value, o.events);
  if (name == "--accounts") return parse_count(value, o.accounts, 1);
  if (name == "--users-per-account") return parse_count(value, o.users_per_account, 1);
  if (name == "--max-users") return parse_count(value, o.max_users, 1);
  if (name == "--seed") return parse_uint(value, o.seed);
  if (name == "--zipf") return parse_double(value, o.zipf) && o.zipf >= 0 && o.zipf <= 100;
  if (name == "--days") return parse_double(value, o.days) && o.days > 0 && o.days <= 36500;
  if (name == "--poison-rate")
    return parse_double(value, o.poison_rate) && o.poison_rate >= 0 && o.poison_rate <= 1;
  if (name == "--start") {
    const auto ms = parse_iso(value);
    if (ms) o.start_ms = *ms;
    return ms.has_value();
  }
  return false;
}

// ---------------------------------------------------------------------------------------
// Accounts
// ---------------------------------------------------------------------------------------

/// Everything static about one account; a pure function of (seed, account number).
struct Account {
  std::uint64_t id = 0;
  Archetype kind = Archetype::kTypical;
  std::uint64_t users = 1;  // users that can ever be active
  std::uint64_t seats = 1;  // initial seats
  std::uint64_t seat_limit = 1;
  std::uint64_t employees = 1;
  std::size_t industry = 0, plan = 0, dept_base = 0, dept_count = 1;
  double dormant_at = 1.0;  // dormant: fraction of the stream after which it is silent
};

Archetype draw_archetype(Rng& r) {
  std::uint64_t pick = r.below(100);
  for (std::size_t i = 0; i < kArchetypes; ++i) {
    if (pick < kArchetypeShare[i]) return static_cast<Archetype>(i);
    pick -= kArchetypeShare[i];
  }
  return Archetype::kTypical;
}

std::uint64_t draw_users(Archetype kind, Rng& r, std::uint64_t max_users) {
  // Pareto tail: median ~5, P(> 100) ~ 1.5%, P(> 1000) ~ 0.1%.
  const double heavy = 3.0 * std::pow(1.0 - r.uniform(), -1.0 / 1.2);
  double n = std::min(heavy, 1e9);
  switch (kind) {
    case Archetype::kBuyingCommittee:
      n = static_cast<double>(r.range(3, 8));
      break;
    case Archetype::kCasualVolume:
      n = r.log_uniform(20, 200);
      break;
    case Archetype::kSingleChampion:
      n = 1;
      break;
    case Archetype::kExpanding:
      n = std::max(n, static_cast<double>(r.range(6, 40)));
      break;
    case Archetype::kContracting:
      n = std::max(n, static_cast<double>(r.range(4, 30)));
      break;
    default:
      break;
  }
  return std::clamp<std::uint64_t>(static_cast<std::uint64_t>(n), 1, max_users);
}

std::uint64_t scaled(std::uint64_t v, double factor) {
  return static_cast<std::uint64_t>(std::ceil(static_cast<double>(v) * factor));
}

/// Initial seats and seat limit; seats never exceed the limit.
void draw_seats(Account& a, Rng& r) {
  const std::uint64_t u = a.users;
  switch (a.kind) {
    case Archetype::kBuyingCommittee:
      a.seats = u + r.range(2, 10);
      a.seat_limit = a.seats + r.range(5, 40);
      break;
    case Archetype::kCasualVolume:
      a.seats = u;
      a.seat_limit = u + u / 5 + 1;
      break;
    case Archetype::kSingleChampion:
      a.seats = r.range(10, 60);
      a.seat_limit = a.seats + r.range(0, 30);
      break;
    case Archetype::kExpanding:
      a.seat_limit = std::max(scaled(u, 1.3), u + 5);
      a.seats = std::max<std::uint64_t>(1, scaled(a.seat_limit, 0.45 + 0.2 * r.uniform()));
      break;
    case Archetype::kContracting:
      a.seats = u + r.range(0, u / 3 + 1);
      a.seat_limit = a.seats + r.range(0, 5);
      break;
    default:
      a.seats = u + r.range(0, u / 2);
      a.seat_limit = a.seats + std::max<std::uint64_t>(1, scaled(a.seats, r.uniform()));
      break;
  }
}

std::size_t plan_for(std::uint64_t seat_limit, Rng& r) {
  std::size_t plan = seat_limit <= 3     ? r.below(2)
                     : seat_limit <= 20  ? 2
                     : seat_limit <= 150 ? 3
                                         : 4;
  if (r.chance(0.15)) plan = std::min<std::size_t>(plan + 1, kPlans.size() - 1);
  return plan;
}

std::size_t dept_count_for(const Account& a, Rng& r) {
  switch (a.kind) {
    case Archetype::kCasualVolume:
    case Archetype::kSingleChampion:
      return 1;
    case Archetype::kBuyingCommittee:
      return std::min<std::size_t>(kDepartments.size(), a.users);
    case Archetype::kExpanding:
      return r.range(3, 5);
    default:
      return r.range(1, 3);
  }
}

Account make_account(const Options& o, std::uint64_t id) {
  Rng r(mix(o.seed, id));
  Account a;
  a.id = id;
  a.kind = o.users_per_account != 0 ? Archetype::kTypical : draw_archetype(r);
  a.users = o.users_per_account != 0 ? o.users_per_account : draw_users(a.kind, r, o.max_users);
  draw_seats(a, r);
  const double head = static_cast<double>(std::max(a.users, a.seat_limit));
  a.employees = static_cast<std::uint64_t>(std::min(head * r.log_uniform(1, 30), 1e7));
  a.industry = r.below(kIndustries.size());
  a.plan = plan_for(a.seat_limit, r);
  a.dept_base = r.below(kDepartments.size());
  a.dept_count = dept_count_for(a, r);
  a.dormant_at = 0.15 + 0.35 * r.uniform();
  return a;
}

/// Identity of a user across the whole stream; never 0.
std::uint64_t user_key(std::uint64_t account, std::uint64_t user) {
  return ((account + 1) << 32) | user;
}

std::string_view department_of(const Account& a, std::uint64_t user, std::uint64_t seed) {
  std::size_t offset = 0;
  switch (a.kind) {
    case Archetype::kBuyingCommittee:
      offset = user;
      break;
    case Archetype::kExpanding:
      offset = user * a.dept_count / a.users;
      break;
    default:
      offset = mix(seed ^ 0xde9a, user_key(a.id, user)) % a.dept_count;
      break;
  }
  return kDepartments[(a.dept_base + offset) % kDepartments.size()];
}

/// Explicit role of a user, or empty when the user has none (~40% of users).
std::string_view role_of(const Account& a, std::uint64_t user, std::uint64_t seed) {
  const bool managed = a.kind == Archetype::kBuyingCommittee || a.kind == Archetype::kExpanding ||
                       a.kind == Archetype::kContracting;
  if (user == 0 && managed) return kRoles[0];
  if (user == 0 && a.kind == Archetype::kSingleChampion) return kRoles[2];
  if (a.kind == Archetype::kBuyingCommittee && user <= 2) return kRoles[user];
  const std::uint64_t h = mix(seed ^ 0x201e, user_key(a.id, user));
  if (h % 100 >= 60) return {};
  if (user == 0) return kRoles[0];  // the account's first user, when it has a role, is admin
  const std::uint64_t pick = (h >> 8) % 100;
  return kRoles[pick < 15 ? 0 : pick < 23 ? 1 : pick < 35 ? 2 : 3];
}

// ---------------------------------------------------------------------------------------
// Generator
// ---------------------------------------------------------------------------------------

/// The track event chosen for one step, with its quantity property (0 = none).
struct TrackChoice {
  std::string_view name;
  Qty qty = Qty::kNone;
  std::uint64_t amount = 0;
  bool usage = true;
  bool by_admin = false;
};

class Generator {
 public:
  Generator(const Options& o, const Sink& sink)
      : opt_(o),
        rng_(mix(o.seed, 0x6e7e47)),
        account_zipf_(o.accounts, o.zipf),
        rank_to_account_(o.accounts, mix(o.seed, 0x9e4a)),
        behaviours_(make_behaviours()),
        seats_(o.accounts, 0),
        line_ms_(o.days * static_cast<double>(kMsPerDay) / static_cast<double>(o.events)),
        out_(sink) {}

  void run() {
    while (line_ < opt_.events) step();
    out_.flush();
  }

 private:
  // One generation step writes one page/track call plus whatever group/identify calls must
  // precede it (and poison lines, see begin). It stops as soon as the line budget is spent.
  void step() {
    const double t = static_cast<double>(line_) / static_cast<double>(opt_.events);
    const Account a = pick_account(t);
    std::uint64_t user = pick_user(a, t);
    const bool page = rng_.chance(0.01);
    TrackChoice choice = page ? TrackChoice{} : choose_track(a);
    if (choice.by_admin) user = 0;
    const std::int64_t ts = event_time(t);
    if (!introduce(a, user, ts)) return;
    if (page) return write_page(a, user, ts);
    apply_seats(a, choice);
    write_track(a, user, choice, ts);
    if (choice.qty != Qty::kNone && choice.qty != Qty::kInviteCount && rng_.chance(0.3))
      write_group(a, user, ts + 1);
  }

  const Behaviour& behaviour(const Account& a) const {
    return behaviours_[static_cast<std::size_t>(a.kind)];
  }

  // --- who and when ----------------------------------------------------------------------

  /// Probability that an account of this archetype is active at stream progress t.
  static double activity(const Account& a, double t) {
    switch (a.kind) {
      case Archetype::kDormant:
        return t < a.dormant_at ? 1.0 : 0.0;
      case Archetype::kContracting:
        return 1.0 - 0.85 * t;
      case Archetype::kExpanding:
        return 0.3 + 0.7 * t;
      default:
        return 1.0;
    }
  }

  Account pick_account(double t) {
    for (int attempt = 0;; ++attempt) {
      const std::uint64_t rank = account_zipf_.sample(rng_) - 1;
      Account a = make_account(opt_, rank_to_account_(rank));
      const double p = activity(a, t);
      if (p >= 1.0 || rng_.chance(p) || attempt == 64) return a;
    }
  }

  /// Users with small numbers are the busiest; expanding and contracting accounts move
  /// the window of users that are active at all.
  std::uint64_t pick_user(const Account& a, double t) {
    double window = static_cast<double>(a.users);
    if (a.kind == Archetype::kSingleChampion) return 0;
    if (a.kind == Archetype::kExpanding) window *= 0.25 + 0.75 * t;
    if (a.kind == Archetype::kContracting) window *= 1.0 - 0.7 * t;
    window = std::max(1.0, std::ceil(window));
    const double x = window * std::pow(rng_.uniform(), behaviour(a).user_skew);
    return std::min(static_cast<std::uint64_t>(x), static_cast<std::uint64_t>(window) - 1);
  }

  /// In-order base time of the current line plus realistic disorder.
  std::int64_t event_time(double t) {
    const double span = opt_.days * static_cast<double>(kMsPerDay);
    auto ms = static_cast<std::int64_t>(t * span + rng_.uniform() * line_ms_);
    const double r = rng_.uniform();
    if (r < 0.001)
      ms -= static_cast<std::int64_t>(rng_.range(kMsPerDay, 3 * kMsPerDay));
    else if (r < 0.051)
      ms -= static_cast<std::int64_t>(rng_.range(0, 10 * kMsPerMinute));
    return opt_.start_ms + std::max<std::int64_t>(ms, 0);
  }

  // --- what --------------------------------------------------------------------------------

  TrackChoice choose_track(const Account& a) {
    const Behaviour& b = behaviour(a);
    if (b.total == 0 || !rng_.chance(b.fabric_rate))
      return {kUsageEvents[rng_.below(kUsageEvents.size())]};
    std::uint64_t pick = rng_.below(b.total);
    Fab fab = b.mix.back().event;
    for (const Weight& w : b.mix) {
      if (pick < w.weight) {
        fab = w.event;
        break;
      }
      pick -= w.weight;
    }
    const FabricEvent& e = kFabric[fab];
    return {e.name, e.qty, 0, false, e.by_admin};
  }

  std::uint32_t& current_seats(const Account& a) {
    std::uint32_t& s = seats_[a.id];
    if (s == 0) s = static_cast<std::uint32_t>(std::min<std::uint64_t>(a.seats, UINT32_MAX));
    return s;
  }

  /// Sets the quantity of seat and invite events and keeps seats within their bounds; a
  /// seat change that is impossible becomes a related event without a quantity.
  void apply_seats(const Account& a, TrackChoice& c) {
    if (c.qty == Qty::kInviteCount) c.amount = rng_.range(3, 25);
    if (c.qty == Qty::kSeatsAdded) add_seats(a, c);
    if (c.qty == Qty::kSeatsRemoved) remove_seats(a, c);
  }

  /// Seats never exceed seat_limit; an account at its limit compares plans instead.
  void add_seats(const Account& a, TrackChoice& c) {
    std::uint32_t& seats = current_seats(a);
    const std::uint64_t limit = std::max<std::uint64_t>(a.seat_limit, seats);
    if (seats >= limit) {
      c = {kFabric[kPlanComparison].name, Qty::kNone, 0, false, false};
      return;
    }
    const std::uint64_t room = limit - seats;
    c.amount = std::min(rng_.range(1, std::max<std::uint64_t>(1, room / 3)), room);
    seats += static_cast<std::uint32_t>(c.amount);
  }

  /// Only contracting accounts shed seats below their user count (never below 1); at the
  /// floor the admin removes a user instead.
  void remove_seats(const Account& a, TrackChoice& c) {
    std::uint32_t& seats = current_seats(a);
    const std::uint64_t users_floor = std::max<std::uint64_t>(1, std::min(a.users, a.seats));
    const std::uint64_t floor = a.kind == Archetype::kContracting ? 1 : users_floor;
    if (seats <= floor) {
      c = {kFabric[kAccountRemovedUser].name, Qty::kNone, 0, false, true};
      return;
    }
    c.amount = std::min<std::uint64_t>(rng_.range(1, 3), seats - floor);
    seats -= static_cast<std::uint32_t>(c.amount);
  }

  // --- writing -----------------------------------------------------------------------------

  /// Starts a valid line: {"type":"<type>","messageId":"m-<n>". Each line slot is first
  /// given to a poison line with probability --poison-rate. False when the budget is spent.
  bool begin(std::string_view type) {
    while (opt_.poison_rate > 0 && line_ < opt_.events && rng_.chance(opt_.poison_rate))
      write_poison();
    return begin_raw(type);
  }

  bool begin_raw(std::string_view type) {
    if (line_ >= opt_.events) return false;
    ++line_;
    out_.put("{\"type\":\"");
    out_.put(type);
    out_.put("\",\"messageId\":\"m-");
    out_.put_uint(line_);
    out_.put('"');
    return true;
  }

  void put_account_id(std::uint64_t account) {
    out_.put("acc-");
    out_.put_padded(account + 1, 6);
  }
  void put_user(std::uint64_t account, std::uint64_t user) {
    out_.put(",\"userId\":\"u-");
    out_.put_padded(account + 1, 6);
    out_.put('-');
    out_.put_padded(user + 1, 5);
    out_.put('"');
  }
  void put_time(std::int64_t ms) {
    out_.put(",\"timestamp\":\"");
    times_.write(out_, std::max(ms, opt_.start_ms));
    out_.put('"');
  }

  /// Emits group + identify before a user's first call; false if the budget ran out.
  bool introduce(const Account& a, std::uint64_t user, std::int64_t ts) {
    if (!introduced_.insert(user_key(a.id, user))) return true;
    write_group(a, user, ts - 2);
    write_identify(a, user, ts - 1);
    return line_ < opt_.events;
  }

  void write_group(const Account& a, std::uint64_t user, std::int64_t ts) {
    if (!begin("group")) return;
    put_user(a.id, user);
    out_.put(",\"groupId\":\"");
    put_account_id(a.id);
    out_.put('"');
    put_time(ts);
    out_.put(",\"traits\":{\"industry\":\"");
    out_.put(kIndustries[a.industry]);
    out_.put("\",\"employees\":");
    out_.put_uint(a.employees);
    out_.put(",\"plan\":\"");
    out_.put(kPlans[a.plan]);
    out_.put("\",\"seats\":");
    const std::uint32_t seats = current_seats(a);
    out_.put_uint(seats);
    out_.put(",\"seat_limit\":");
    out_.put_uint(std::max<std::uint64_t>(a.seat_limit, seats));
    out_.put("}}");
    out_.end_line();
  }

  void write_identify(const Account& a, std::uint64_t user, std::int64_t ts) {
    if (!begin("identify")) return;
    put_user(a.id, user);
    put_time(ts);
    out_.put(",\"traits\":{");
    const std::string_view role = role_of(a, user, opt_.seed);
    if (!role.empty()) {
      out_.put("\"role\":\"");
      out_.put(role);
      out_.put("\",");
    }
    out_.put("\"department\":\"");
    out_.put(department_of(a, user, opt_.seed));
    out_.put("\"}}");
    out_.end_line();
  }

  void write_page(const Account& a, std::uint64_t user, std::int64_t ts) {
    if (!begin("page")) return;
    put_user(a.id, user);
    put_time(ts);
    out_.put(",\"name\":\"");
    out_.put(kPageNames[rng_.chance(0.5) ? 0 : rng_.below(kPageNames.size())]);
    out_.put("\"}");
    out_.end_line();
  }

  void write_properties(const TrackChoice& c) {
    out_.put(",\"properties\":{");
    if (c.usage) {
      out_.put("\"duration_ms\":");
      out_.put_uint(static_cast<std::uint64_t>(rng_.log_uniform(20, 20000)));
      out_.put(",\"client\":\"");
      const double r = rng_.uniform();
      out_.put(kClients[r < 0.7 ? 0 : r < 0.9 ? 1 : 2]);
      out_.put('"');
    } else if (c.qty != Qty::kNone) {
      out_.put(c.qty == Qty::kInviteCount ? "\"count\":" : "\"seats\":");
      out_.put_uint(c.amount);
    }
    out_.put('}');
  }

  void write_track(const Account& a, std::uint64_t user, const TrackChoice& c, std::int64_t ts) {
    if (!begin("track")) return;
    put_user(a.id, user);
    out_.put(",\"event\":\"");
    out_.put(c.name);
    out_.put('"');
    put_time(ts);
    write_properties(c);
    if (rng_.chance(0.5)) {
      out_.put(",\"context\":{\"groupId\":\"");
      put_account_id(a.id);
      out_.put("\"}");
    }
    out_.put('}');
    out_.end_line();
  }

  // --- poison ------------------------------------------------------------------------------

  /// One invalid line.
  void write_poison() {
    const std::uint64_t account = rank_to_account_(account_zipf_.sample(rng_) - 1);
    const std::int64_t ts =
        event_time(static_cast<double>(line_) / static_cast<double>(opt_.events));
    const std::uint64_t kind = rng_.below(7);
    if (kind == 6) return write_not_object();
    if (!begin_raw("track")) return;
    switch (kind) {
      case 0:
        return finish_malformed(account, ts);
      case 1:
        return finish_wrong_type(account, ts);
      case 2:
        return finish_track(account, "Query Run", std::nullopt);
      case 3:
        return finish_bad_time(account);
      case 4:
        return finish_track(account, {}, ts);
      default:
        return finish_oversized(account, ts);
    }
  }

  void write_not_object() {
    if (line_ >= opt_.events) return;
    ++line_;
    constexpr std::array<std::string_view, 5> kValues = {"[{\"type\":\"track\"}]", "\"track\"",
                                                         "42", "null", "true"};
    out_.put(kValues[rng_.below(kValues.size())]);
    out_.end_line();
  }

  /// Completes a started track line; an empty name or no time leaves that field out.
  void finish_track(std::uint64_t account, std::string_view name, std::optional<std::int64_t> ts) {
    put_user(account, 0);
    if (!name.empty()) {
      out_.put(",\"event\":\"");
      out_.put(name);
      out_.put('"');
    }
    if (ts) put_time(*ts);
    out_.put('}');
    out_.end_line();
  }

  void finish_malformed(std::uint64_t account, std::int64_t ts) {
    put_user(account, 0);
    put_time(ts);
    constexpr std::array<std::string_view, 3> kTails = {
        ",\"event\":\"Query Run\"", ",\"event\":\"Query Run\",}", ",event:\"Query Run\"}"};
    out_.put(kTails[rng_.below(kTails.size())]);  // unterminated, trailing comma, bare key
    out_.end_line();
  }

  void finish_wrong_type(std::uint64_t account, std::int64_t ts) {
    if (rng_.chance(0.5)) {
      out_.put(",\"userId\":");
      out_.put_uint(account + 1);  // a number where a string is required
      out_.put(",\"event\":\"Query Run\"");
      put_time(ts);
    } else {
      put_user(account, 0);
      out_.put(",\"event\":\"Seat Added\"");
      put_time(ts);
      out_.put(",\"properties\":{\"seats\":\"five\"}");
    }
    out_.put('}');
    out_.end_line();
  }

  void finish_bad_time(std::uint64_t account) {
    constexpr std::array<std::string_view, 3> kBad = {"2026-13-45T25:61:00.000Z", "yesterday",
                                                      "2026/01/05 10:00"};
    put_user(account, 0);
    out_.put(",\"event\":\"Query Run\",\"timestamp\":\"");
    out_.put(kBad[rng_.below(kBad.size())]);
    out_.put("\"}");
    out_.end_line();
  }

  void finish_oversized(std::uint64_t account, std::int64_t ts) {
    put_user(account, 0);
    out_.put(",\"event\":\"Document Edited\"");
    put_time(ts);
    out_.put(",\"properties\":{\"blob\":\"");
    out_.put_repeated('x', 41 * 1024);
    out_.put("\"}}");
    out_.end_line();
  }

  const Options& opt_;
  Rng rng_;
  ZipfSampler account_zipf_;
  AffinePermutation rank_to_account_;
  std::vector<Behaviour> behaviours_;
  KeySet introduced_;
  std::vector<std::uint32_t> seats_;  // current seats per account; 0 = initial value
  double line_ms_;                    // share of the time span per line
  Out out_;
  TimeWriter times_;
  std::uint64_t line_ = 0;  // lines written so far
};

}  // namespace

bool set_option(Options& o, std::string_view name, std::string_view value) {
  return set_option_impl(o, name, value);
}

std::string_view usage() {
  return "usage: gen_events [flags] > events.jsonl\n"
         "Writes synthetic Segment-spec events (group/identify/track/page), one JSON per line.\n"
         "  --events N              lines to write (default 1000000)\n"
         "  --accounts N            number of accounts, 1..1e8 (default 10000)\n"
         "  --users-per-account N   every account has exactly N users, archetype typical\n"
         "  --max-users N           cap on users per account, 1..1e8 (default 10000)\n"
         "  --zipf S                Zipf exponent of activity across accounts, >= 0 (default 1.1)\n"
         "  --seed S                random seed (default 42)\n"
         "  --days D                days spanned by the stream, > 0 (default 60)\n"
         "  --start ISO             first timestamp (default 2026-01-05T00:00:00Z)\n"
         "  --poison-rate F         fraction of invalid lines, 0..1 (default 0)\n"
         "  --help                  show this help\n";
}

void generate(const Options& options, const Sink& sink) {
  if (options.events == 0) return;
  Generator(options, sink).run();
}

}  // namespace pqa::synth
