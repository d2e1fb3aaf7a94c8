#include "json_output.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>

namespace pqa::scorer {

void append_json_string(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  // Runs of characters that need no escape (almost all of them) are appended in one piece.
  std::size_t run = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(s.substr(run, i - run));
    run = i + 1;
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        out += "\\u00";
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 0xF]);
    }
  }
  out.append(s.substr(run));
  out.push_back('"');
}

namespace {

using rollup::to_string;

void append_escaped(std::string& out, std::string_view s) {
  append_json_string(out, s);
}

/// Fixed-point with at most `decimals` digits, trailing zeros trimmed ("61.5", "0", "0.0713").
void append_number(std::string& out, double v, int decimals) {
  // Values are bounded by construction; clamp anyway so that the output is always JSON.
  if (!std::isfinite(v)) v = 0.0;
  v = std::clamp(v, -1e15, 1e15);
  static constexpr std::array<double, 7> kScale = {1, 10, 100, 1e3, 1e4, 1e5, 1e6};
  const double scale = decimals >= 0 && decimals < static_cast<int>(kScale.size())
                           ? kScale[decimals]
                           : std::pow(10.0, decimals);
  v = std::round(v * scale) / scale;
  if (v == 0.0) v = 0.0;  // no "-0"
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed, decimals);
  if (ec != std::errc()) {
    out.push_back('0');
    return;
  }
  std::string_view s(buf, static_cast<std::size_t>(end - buf));
  if (s.find('.') != std::string_view::npos) {
    while (s.back() == '0') s.remove_suffix(1);
    if (s.back() == '.') s.remove_suffix(1);
  }
  out.append(s);
}

class Obj {
 public:
  explicit Obj(std::string& out) : out_(out) { out_.push_back('{'); }
  ~Obj() { out_.push_back('}'); }
  Obj(const Obj&) = delete;
  Obj& operator=(const Obj&) = delete;

  Obj& str(std::string_view key, std::string_view v) {
    this->key(key);
    append_escaped(out_, v);
    return *this;
  }
  Obj& num(std::string_view key, double v, int decimals = 4) {
    this->key(key);
    append_number(out_, v, decimals);
    return *this;
  }
  /// Writes the key and returns the buffer for the caller to append the value.
  std::string& raw(std::string_view key) {
    this->key(key);
    return out_;
  }

 private:
  /// Keys are this file's own snake_case literals: nothing in them needs escaping.
  void key(std::string_view k) {
    if (!first_) out_.push_back(',');
    first_ = false;
    out_.push_back('"');
    out_.append(k);
    out_.append("\":", 2);
  }
  std::string& out_;
  bool first_ = true;
};

void append_components(std::string& out, const rollup::Components& c) {
  Obj o(out);
  o.num("breadth", c.breadth).num("depth", c.depth).num("fabric", c.fabric).num("fit", c.fit);
}

void append_drivers(std::string& out, const std::vector<rollup::Driver>& drivers) {
  out.push_back('[');
  for (std::size_t i = 0; i < drivers.size(); ++i) {
    if (i) out.push_back(',');
    Obj o(out);
    o.str("name", drivers[i].name).num("points", drivers[i].points, 2);
  }
  out.push_back(']');
}

void append_seats(std::string& out, const rollup::SeatMetrics& m) {
  Obj o(out);
  o.num("provisioned_seats", m.provisioned_seats, 2)
      .num("active_users", m.active_users, 0)
      .num("fill_rate", m.fill_rate)
      .num("seat_velocity", m.seat_velocity, 2)
      .num("seat_limit_proximity", m.seat_limit_proximity)
      .num("seat_limit", m.seat_limit, 2);
}

void append_risk_flags(std::string& out, const rollup::Score& s) {
  out.push_back('[');
  if (s.single_user_activation) append_escaped(out, "single_user_activation");
  out.push_back(']');
}

}  // namespace

std::string to_json(const OutputSignal& s, const std::string& model_version) {
  std::string out;
  out.reserve(640);
  write_signal(out, s, model_version);
  return out;
}

void write_signal(std::string& out, const OutputSignal& s, const std::string& model_version) {
  const rollup::Signal& sig = s.signal;
  const rollup::Score& sc = sig.score;
  Obj o(out);
  o.str("signal_id", s.signal_id)
      .str("kind", to_string(sig.kind))
      .str("account_id", s.account.str())
      .num("score", sc.score, 2)
      .str("band", to_string(sc.band))
      .str("event_time", rollup::format_timestamp(sig.event_time))
      .str("model_version", model_version);
  switch (sig.kind) {
    case rollup::SignalKind::kThresholdCrossed:
      o.str("direction", sc.band > sig.previous_band ? "up" : "down")
          .str("previous_band", to_string(sig.previous_band))
          .str("routing", to_string(sc.routing));
      append_components(o.raw("components"), sc.components);
      append_drivers(o.raw("drivers"), sc.drivers);
      break;
    case rollup::SignalKind::kSeatExpansion:
      o.str("pattern", to_string(sc.pattern)).str("routing", to_string(sc.routing));
      append_seats(o.raw("seats"), sc.seats);
      append_drivers(o.raw("drivers"), sc.drivers);
      break;
    case rollup::SignalKind::kBreadthExpansion:
      // The routing too: a CRM field sync that writes {{routing}} from every signal must not
      // blank it on a new department's.
      o.str("department", sig.department).str("routing", to_string(sc.routing));
      append_drivers(o.raw("drivers"), sc.drivers);
      break;
    case rollup::SignalKind::kRoutingChanged:
      o.str("previous_routing", to_string(sig.previous_routing))
          .str("routing", to_string(sc.routing));
      append_components(o.raw("components"), sc.components);
      append_drivers(o.raw("drivers"), sc.drivers);
      break;
  }
  append_risk_flags(o.raw("risk_flags"), sc);
}

std::string score_to_json(const rollup::AccountId& account, const rollup::Score& s,
                          rollup::TimeMs as_of, const std::string& model_version) {
  std::string out;
  out.reserve(640);
  {
    Obj o(out);
    o.str("account_id", account.str())
        .num("score", s.score, 2)
        .str("band", to_string(s.band))
        .str("routing", to_string(s.routing));
    append_components(o.raw("components"), s.components);
    append_drivers(o.raw("drivers"), s.drivers);
    append_seats(o.raw("seats"), s.seats);
    o.str("pattern", to_string(s.pattern))
        .num("active_departments", s.active_departments, 0)
        .num("decay", s.decay)
        .num("expansion_potential", s.expansion_potential)
        .str("segment", s.segment);
    append_risk_flags(o.raw("risk_flags"), s);
    o.str("as_of", rollup::format_timestamp(as_of)).str("model_version", model_version);
  }
  return out;
}

}  // namespace pqa::scorer
