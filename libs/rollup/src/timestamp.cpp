#include <array>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

#include "pqa/rollup/event.h"

namespace pqa::rollup {
namespace {

// Howard Hinnant's days_from_civil: proleptic Gregorian date to days since 1970-01-01.
constexpr std::int64_t days_from_civil(int y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return static_cast<std::int64_t>(era) * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

struct Civil {
  int year;
  unsigned month, day;
};
constexpr Civil civil_from_days(std::int64_t z) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  return {static_cast<int>(static_cast<std::int64_t>(yoe) + era * 400 + (m <= 2)), m, d};
}

constexpr bool is_leap(int y) {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}
constexpr unsigned days_in_month(int y, unsigned m) {
  constexpr std::array<unsigned, 12> kDays{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : kDays[m - 1];
}

/// Reads exactly `n` digits at `pos`; advances `pos`.
bool digits(std::string_view s, std::size_t& pos, int n, int& out) {
  if (pos + static_cast<std::size_t>(n) > s.size()) return false;
  out = 0;
  for (int i = 0; i < n; ++i) {
    const char c = s[pos + static_cast<std::size_t>(i)];
    if (c < '0' || c > '9') return false;
    out = out * 10 + (c - '0');
  }
  pos += static_cast<std::size_t>(n);
  return true;
}

bool expect(std::string_view s, std::size_t& pos, char c) {
  if (pos >= s.size() || s[pos] != c) return false;
  ++pos;
  return true;
}

/// Parses "Z" or "+HH:MM" / "-HH:MM" / "+HHMM" / "+HH" into an offset in minutes.
std::optional<int> parse_offset(std::string_view s, std::size_t& pos) {
  if (pos >= s.size()) return std::nullopt;
  if (s[pos] == 'Z' || s[pos] == 'z') {
    ++pos;
    return 0;
  }
  if (s[pos] != '+' && s[pos] != '-') return std::nullopt;
  const int sign = s[pos] == '-' ? -1 : 1;
  ++pos;
  int hh = 0, mm = 0;
  if (!digits(s, pos, 2, hh)) return std::nullopt;
  const bool colon = pos < s.size() && s[pos] == ':';
  if (colon) ++pos;
  const bool hours_only = !colon && pos == s.size();  // ISO 8601's "+02"
  if ((!hours_only && !digits(s, pos, 2, mm)) || hh > 23 || mm > 59) return std::nullopt;
  return sign * (hh * 60 + mm);
}

struct Fields {
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0, millis = 0;
  int offset_minutes = 0;
};

/// The time the fields name, if they are in range.
std::optional<TimeMs> to_time(const Fields& f) {
  if (f.year < 2000 || f.year > 2099 || f.month < 1 || f.month > 12 || f.day < 1 ||
      static_cast<unsigned>(f.day) > days_in_month(f.year, static_cast<unsigned>(f.month)) ||
      f.hour > 23 || f.minute > 59 || f.second > 60)  // 60: a leap second (RFC 3339)
    return std::nullopt;
  const std::int64_t days =
      days_from_civil(f.year, static_cast<unsigned>(f.month), static_cast<unsigned>(f.day));
  const std::int64_t secs = days * 86400 + f.hour * 3600 + f.minute * 60 + f.second -
                            static_cast<std::int64_t>(f.offset_minutes) * 60;
  // The range holds in UTC too: "2099-12-31T23:00:00-05:00" is 2100 and "2000-01-01T00:30+01:00"
  // is 1999, and a time outside it could not be printed back in the four-digit form.
  constexpr std::int64_t kFirst = 946'684'800;  // 2000-01-01T00:00:00Z
  constexpr std::int64_t kEnd = 4'102'444'800;  // 2100-01-01T00:00:00Z
  if (secs < kFirst || secs >= kEnd) return std::nullopt;
  return secs * 1000 + f.millis;
}

/// The form nearly every pipeline sends, "2026-01-05T10:00:00.250Z", read in one pass without
/// the general parser's step-by-step checks. False: not this form (the general parser decides).
bool read_common_form(std::string_view s, Fields& f) {
  if (s.size() != 24 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
      s[16] != ':' || s[19] != '.' || s[23] != 'Z')
    return false;
  bool digits_only = true;
  auto number = [&](std::size_t at, std::size_t n) {
    int v = 0;
    for (std::size_t i = at; i < at + n; ++i) {
      const int d = s[i] - '0';
      digits_only &= d >= 0 && d <= 9;
      v = v * 10 + d;
    }
    return v;
  };
  f = Fields{number(0, 4),  number(5, 2),  number(8, 2),  number(11, 2),
             number(14, 2), number(17, 2), number(20, 3), 0};
  return digits_only;
}

}  // namespace

std::optional<TimeMs> parse_timestamp(std::string_view s) {
  if (Fields f; read_common_form(s, f)) return to_time(f);
  std::size_t pos = 0;
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (!digits(s, pos, 4, year) || !expect(s, pos, '-') || !digits(s, pos, 2, month) ||
      !expect(s, pos, '-') || !digits(s, pos, 2, day))
    return std::nullopt;
  if (pos >= s.size() || (s[pos] != 'T' && s[pos] != 't' && s[pos] != ' ')) return std::nullopt;
  ++pos;
  if (!digits(s, pos, 2, hour) || !expect(s, pos, ':') || !digits(s, pos, 2, minute) ||
      !expect(s, pos, ':') || !digits(s, pos, 2, second))
    return std::nullopt;
  int millis = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    int scale = 100, n = 0;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      millis += (s[pos] - '0') * scale;  // digits past milliseconds are truncated
      scale /= 10;
      ++pos;
      ++n;
    }
    if (n == 0) return std::nullopt;  // RFC 3339: "." 1*DIGIT, any number of digits
  }
  const auto offset = parse_offset(s, pos);
  if (!offset || pos != s.size()) return std::nullopt;
  return to_time(Fields{year, month, day, hour, minute, second, millis, *offset});
}

std::string format_timestamp(TimeMs t) {
  const Day d = day_of(t);
  const TimeMs in_day = t - start_of_day(d);
  const Civil c = civil_from_days(d);
  const auto ms = static_cast<int>(in_day % 1000);
  const auto secs = static_cast<int>(in_day / 1000);
  std::array<char, 128> buf{};  // roomy: the compiler cannot prove the fields are small
  std::snprintf(buf.data(), buf.size(), "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ", c.year, c.month,
                c.day, secs / 3600, secs / 60 % 60, secs % 60, ms);
  return std::string(buf.data());
}

}  // namespace pqa::rollup
