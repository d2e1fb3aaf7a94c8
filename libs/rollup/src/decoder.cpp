#include <simdjson.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstring>

#include "pqa/rollup/event.h"

namespace pqa::rollup {

std::string_view to_string(DecodeError e) {
  switch (e) {
    case DecodeError::kOversized:
      return "oversized";
    case DecodeError::kMalformedJson:
      return "malformed_json";
    case DecodeError::kNotAnObject:
      return "not_an_object";
    case DecodeError::kMissingType:
      return "missing_type";
    case DecodeError::kUnknownType:
      return "unknown_type";
    case DecodeError::kMissingUserId:
      return "missing_user_id";
    case DecodeError::kMissingTimestamp:
      return "missing_timestamp";
    case DecodeError::kBadTimestamp:
      return "bad_timestamp";
    case DecodeError::kMissingEventName:
      return "missing_event_name";
    case DecodeError::kMissingGroupId:
      return "missing_group_id";
    case DecodeError::kInvalidType:
      return "invalid_type";
    case DecodeError::kInvalidValue:
      return "invalid_value";
    case DecodeError::kIdTooLong:
      return "id_too_long";
    case DecodeError::kUnresolvedAccount:
      return "unresolved_account";
    case DecodeError::kTooFarAhead:
      return "too_far_ahead";
  }
  return "unknown";
}

std::string quote_input(std::string_view value, std::size_t max_bytes) {
  if (value.size() > max_bytes) {
    std::size_t cut = max_bytes;
    while (cut > 0 && (static_cast<unsigned char>(value[cut]) & 0xC0) == 0x80) --cut;
    value = value.substr(0, cut);
  }
  std::string out;
  out.reserve(value.size());
  for (const char ch : value) {
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c != 0x7F) {
      out.push_back(ch);
      continue;
    }
    static constexpr char kHex[] = "0123456789abcdef";
    out += "\\x";
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 0xF]);
  }
  return out;
}

std::string DecodeFailure::message() const {
  std::string m(to_string(code));
  if (!detail.empty()) m.append(": ").append(detail);
  return m;
}

namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;
using simdjson::dom::object;

DecodeFailure fail(DecodeError code, std::string detail) {
  return {code, std::move(detail)};
}

DecodeFailure wrong_type(std::string_view field, std::string_view expected) {
  return fail(DecodeError::kInvalidType,
              "field '" + std::string(field) + "' must be " + std::string(expected));
}

using Field = std::optional<element>;  ///< absent or null: nullopt

/// One pass over an object picking out the named fields (the first occurrence of a duplicated
/// key wins, as with a lookup). Looking each key up separately would rescan the object.
template <std::size_t N>
std::array<Field, N> pick(const object& obj, const std::array<std::string_view, N>& names) {
  std::array<Field, N> out{};
  for (const simdjson::dom::key_value_pair kv : obj) {
    if (kv.value.is_null()) continue;
    for (std::size_t i = 0; i < N; ++i) {
      if (kv.key == names[i]) {
        if (!out[i]) out[i] = kv.value;
        break;
      }
    }
  }
  return out;
}

/// Optional string field; error if present with another type.
/// `path`: the object the field is in (e.g. "traits."), joined to the key only for an error.
std::optional<DecodeFailure> as_string(const Field& e, std::string_view key, std::string_view& out,
                                       std::string_view path = {}) {
  if (!e) return std::nullopt;
  if (e->get_string().get(out) != simdjson::SUCCESS)
    return wrong_type(std::string(path).append(key), "a string");
  return std::nullopt;
}

/// The decimal text of a JSON number used as an id: a whole number as an integer (42, 42.0,
/// 1e5 and -0.0 are "42", "42", "100000" and "0", so a producer writing floats names the same
/// id as one writing integers); anything else in plain decimals (42.5) between 1e-6 and 1e21,
/// and in its shortest form beyond (1e-7, 1e+25).
std::string_view number_text(double d, std::array<char, 64>& buf) {
  char* const first = buf.data();
  char* const last = buf.data() + buf.size();
  std::to_chars_result written{};
  const double magnitude = std::abs(d);
  if (d == std::trunc(d) && magnitude < 9.2e18)
    written = std::to_chars(first, last, static_cast<std::int64_t>(d));
  else if (magnitude >= 1e-6 && magnitude < 1e21)
    written = std::to_chars(first, last, d, std::chars_format::fixed);  // at most ~26 chars
  if (written.ptr == nullptr || written.ec != std::errc())
    written = std::to_chars(first, last, d);  // shortest: at most 24 chars
  return {first, static_cast<std::size_t>(written.ptr - first)};
}

/// An id field (userId, anonymousId, groupId): a string, or a number, which Segment's libraries
/// accept and send as a JSON number, taken as its decimal text (number_text). `text` holds a
/// number's text; `out` may point into it.
std::optional<DecodeFailure> as_id(const Field& e, std::string_view key, std::string& text,
                                   std::string_view& out) {
  if (!e) return std::nullopt;
  std::array<char, 64> buf{};
  const auto integer_text = [&buf](auto v) {
    const auto written = std::to_chars(buf.data(), buf.data() + buf.size(), v);
    return std::string_view(buf.data(), static_cast<std::size_t>(written.ptr - buf.data()));
  };
  std::string_view number;
  switch (e->type()) {
    case element_type::STRING:
      return as_string(e, key, out);
    case element_type::INT64:
      number = integer_text(e->get_int64().value_unsafe());
      break;
    case element_type::UINT64:
      number = integer_text(e->get_uint64().value_unsafe());
      break;
    case element_type::DOUBLE:
      number = number_text(e->get_double().value_unsafe(), buf);
      break;
    default:
      return wrong_type(key, "a string or a number");
  }
  text.assign(number);
  out = text;
  return std::nullopt;
}

std::optional<DecodeFailure> as_object(const Field& e, std::string_view key,
                                       std::optional<object>& out) {
  if (!e) return std::nullopt;
  object o;
  if (e->get_object().get(o) != simdjson::SUCCESS) return wrong_type(key, "an object");
  out = o;
  return std::nullopt;
}

/// The number a string holds, surrounding blanks aside ("250", " 1e3", "12.5"); nullopt for
/// anything else ("51-200", "1,000", "", "0x10", "nan").
std::optional<double> parse_decimal(std::string_view s) {
  const auto first = s.find_first_not_of(" \t");
  if (first == std::string_view::npos) return std::nullopt;
  s = s.substr(first, s.find_last_not_of(" \t") - first + 1);
  double d = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
  if (ec != std::errc() || end != s.data() + s.size() || !std::isfinite(d)) return std::nullopt;
  return d;
}

std::string lower_trimmed(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

CallType call_type_of(std::string_view t, bool& known) {
  known = true;
  if (t == "track") return CallType::kTrack;
  if (t == "identify") return CallType::kIdentify;
  if (t == "group") return CallType::kGroup;
  if (t == "page" || t == "screen" || t == "alias") return CallType::kIgnored;
  known = false;
  return CallType::kIgnored;
}

}  // namespace

/// Room for a message of `max_bytes` once its long integers are written as decimals
/// (widen_long_integers): ".0" adds 2 bytes to an integer of at least 20 digits and its
/// separator, under 10 %.
constexpr std::size_t widened_capacity(std::size_t max_bytes) {
  return max_bytes + max_bytes / 10 + 2;
}

struct EventDecoder::Impl {
  simdjson::dom::parser parser;
  std::unique_ptr<char[]> buffer;
  std::size_t capacity = 0;

  explicit Impl(std::size_t max_bytes)
      : parser(widened_capacity(max_bytes)),
        buffer(std::make_unique<char[]>(widened_capacity(max_bytes) +
                                        simdjson::SIMDJSON_PADDING)),  // zeroed
        capacity(max_bytes) {}
};

EventDecoder::EventDecoder(const Model& model)
    : model_(model), impl_(std::make_unique<Impl>(model.config().decoder.max_event_bytes)) {}
EventDecoder::~EventDecoder() = default;

namespace {

/// Decoding of one parsed document; split out so each step reads as one short function.
class Reader {
 public:
  /// `widened`: the document's long integers were parsed as doubles (widen_long_integers).
  Reader(const Model& model, const object& root, Event& out, bool widened)
      : model_(model), f_(pick_top(root)), event_(out), widened_(widened) {}

  std::optional<DecodeFailure> run() {
    std::string_view type;
    if (auto err = as_string(f_[kType], "type", type)) return err;
    if (type.empty()) return fail(DecodeError::kMissingType, "field 'type' is required");
    bool known = false;
    event_.type = call_type_of(type, known);
    if (!known)
      return fail(DecodeError::kUnknownType, "type '" + clip(type) + "' is not supported");
    if (event_.type == CallType::kIgnored) return std::nullopt;

    for (auto step :
         {&Reader::read_ids, &Reader::read_timestamp, &Reader::read_context, &Reader::read_call}) {
      if (auto err = (this->*step)()) return err;
    }
    return std::nullopt;
  }

 private:
  enum TopField {
    kType,
    kUserId,
    kAnonymousId,
    kMessageId,
    kTimestamp,
    kOriginalTimestamp,
    kContext,
    kEvent,
    kProperties,
    kTraits,
    kGroupId,
    kTopFieldCount
  };
  static constexpr std::array<std::string_view, kTopFieldCount> kTopFields = {
      "type",    "userId", "anonymousId", "messageId", "timestamp", "originalTimestamp",
      "context", "event",  "properties",  "traits",    "groupId"};

  /// The top-level fields in one pass, dispatching on key length (the hot path of decoding).
  static std::array<Field, kTopFieldCount> pick_top(const object& root) {
    std::array<Field, kTopFieldCount> out{};
    for (const simdjson::dom::key_value_pair kv : root) {
      const int i = top_field(kv.key);
      if (i >= 0 && !out[static_cast<std::size_t>(i)] && !kv.value.is_null())
        out[static_cast<std::size_t>(i)] = kv.value;
    }
    return out;
  }

  static int top_field(std::string_view k) {
    auto is = [&k](TopField f) { return k == kTopFields[f]; };
    switch (k.size()) {
      case 4:
        return is(kType) ? kType : -1;
      case 5:
        return is(kEvent) ? kEvent : -1;
      case 6:
        return is(kUserId) ? kUserId : is(kTraits) ? kTraits : -1;
      case 7:
        return is(kContext) ? kContext : is(kGroupId) ? kGroupId : -1;
      case 9:
        return is(kMessageId) ? kMessageId : is(kTimestamp) ? kTimestamp : -1;
      case 10:
        return is(kProperties) ? kProperties : -1;
      case 11:
        return is(kAnonymousId) ? kAnonymousId : -1;
      case 17:
        return is(kOriginalTimestamp) ? kOriginalTimestamp : -1;
      default:
        return -1;
    }
  }

  static std::string clip(std::string_view s) { return quote_input(s); }

  std::optional<DecodeFailure> check_length(std::string_view key, std::string_view value) const {
    if (value.size() <= model_.config().decoder.max_id_bytes) return std::nullopt;
    return fail(DecodeError::kIdTooLong, "field '" + std::string(key) + "' is longer than " +
                                             std::to_string(model_.config().decoder.max_id_bytes) +
                                             " bytes");
  }

  std::optional<DecodeFailure> checked_id(std::string_view key, std::string_view value,
                                          std::string& out) const {
    if (auto err = check_length(key, value)) return err;
    out.assign(value);
    return std::nullopt;
  }

  std::optional<DecodeFailure> read_ids() {
    std::string_view user, anon, message;
    if (auto err = id_field(f_[kUserId], "userId", user_text_, user)) return err;
    if (auto err = id_field(f_[kAnonymousId], "anonymousId", anon_text_, anon)) return err;
    if (auto err = as_string(f_[kMessageId], "messageId", message)) return err;
    const std::string_view id = !user.empty() ? user : anon;
    if (id.empty())
      return fail(DecodeError::kMissingUserId, "one of 'userId' or 'anonymousId' is required");
    if (auto err = check_length(!user.empty() ? "userId" : "anonymousId", id)) return err;
    event_.user.assign(id);
    return checked_id("messageId", message, event_.message_id);
  }

  std::optional<DecodeFailure> read_timestamp() {
    std::string_view ts;
    std::string_view key = "timestamp";
    if (auto err = as_string(f_[kTimestamp], key, ts)) return err;
    if (ts.empty()) {
      key = "originalTimestamp";
      if (auto err = as_string(f_[kOriginalTimestamp], key, ts)) return err;
    }
    if (ts.empty()) return fail(DecodeError::kMissingTimestamp, "field 'timestamp' is required");
    auto parsed = parse_timestamp(ts);
    if (!parsed)
      return fail(DecodeError::kBadTimestamp, "field '" + std::string(key) +
                                                  "' is not an ISO-8601 time in 2000..2099: '" +
                                                  clip(ts) + "'");
    event_.timestamp = *parsed;
    return std::nullopt;
  }

  std::optional<DecodeFailure> read_context() {
    std::optional<object> context;
    if (auto err = as_object(f_[kContext], "context", context)) return err;
    if (!context) return std::nullopt;
    const auto fields = pick(*context, std::array<std::string_view, 2>{"groupId", "traits"});
    std::string_view group;
    if (auto err = id_field(fields[0], "context.groupId", group_text_, group)) return err;
    if (!group.empty()) {
      if (auto err = check_length("context.groupId", group)) return err;
      event_.explicit_account.assign(group);
    }
    std::optional<object> traits;
    if (auto err = as_object(fields[1], "context.traits", traits)) return err;
    if (traits) return read_user_traits(*traits, "context.traits.");
    return std::nullopt;
  }

  /// `path`: where the traits object is ("traits." or "context.traits."), for the errors.
  std::optional<DecodeFailure> read_user_traits(const object& traits, std::string_view path) {
    const auto fields = pick(traits, std::array<std::string_view, 2>{"role", "department"});
    std::string_view role, department;
    if (auto err = as_string(fields[0], "role", role, path)) return err;
    if (auto err = as_string(fields[1], "department", department, path)) return err;
    if (role.size() > model_.config().decoder.max_id_bytes)
      return fail(DecodeError::kIdTooLong, "field '" + std::string(path) + "role' is too long");
    if (!role.empty()) event_.role = lower_trimmed(role);
    if (!department.empty()) {
      std::string dept = lower_trimmed(department);
      if (dept.size() > model_.config().decoder.max_id_bytes)
        return fail(DecodeError::kIdTooLong,
                    "field '" + std::string(path) + "department' is too long");
      if (!dept.empty()) event_.department = std::move(dept);
    }
    return std::nullopt;
  }

  std::optional<DecodeFailure> read_call() {
    switch (event_.type) {
      case CallType::kTrack:
        return read_track();
      case CallType::kIdentify:
        return read_identify();
      case CallType::kGroup:
        return read_group();
      case CallType::kIgnored:
        break;
    }
    return std::nullopt;
  }

  /// as_id, except that in a widened document a number beyond 64-bit integers is refused as
  /// an id: it may be an integer whose digits the double no longer holds (two ids could become
  /// one). Every number that widening made is that large; smaller ones read as anywhere else.
  std::optional<DecodeFailure> id_field(const Field& e, std::string_view key, std::string& text,
                                        std::string_view& out) const {
    double d = 0;
    if (widened_ && e && e->type() == element_type::DOUBLE &&
        e->get_double().get(d) == simdjson::SUCCESS && std::abs(d) >= 9223372036854775808.0)
      return fail(DecodeError::kInvalidValue,
                  "field '" + std::string(key) +
                      "' is an integer beyond 64 bits: send a long id as a string");
    return as_id(e, key, text, out);
  }

  std::optional<DecodeFailure> read_track() {
    std::string_view name;
    if (auto err = as_string(f_[kEvent], "event", name)) return err;
    if (name.empty()) return fail(DecodeError::kMissingEventName, "field 'event' is required");
    if (auto err = checked_id("event", name, event_.name)) return err;
    // Of the wrong type on any event, not only on those whose quantity the model reads.
    std::optional<object> props;
    if (auto err = as_object(f_[kProperties], "properties", props)) return err;
    event_.rule = model_.rule_for(name);
    if (event_.rule == nullptr || event_.rule->quantity_property.empty()) return std::nullopt;
    if (!props) return std::nullopt;
    const std::string& key = event_.rule->quantity_property;
    const Field value = pick(*props, std::array<std::string_view, 1>{key})[0];
    if (!value) return std::nullopt;
    // A count sent as a string holding a number ("3") is that number, as for the seats traits.
    double q = 0;
    std::string_view text;
    if (value->get_string().get(text) == simdjson::SUCCESS) {
      const auto parsed = parse_decimal(text);
      if (!parsed) return wrong_type("properties." + key, "a number or a string holding one");
      q = *parsed;
    } else if (value->get_double().get(q) != simdjson::SUCCESS) {
      return wrong_type("properties." + key, "a number or a string holding one");
    }
    if (!std::isfinite(q) || q < 0 || q > 1e6 || q != std::floor(q))
      return fail(DecodeError::kInvalidValue,
                  "field 'properties." + key + "' must be a whole number in 0..1000000");
    event_.quantity = q;
    return std::nullopt;
  }

  std::optional<DecodeFailure> read_identify() {
    std::optional<object> traits;
    if (auto err = as_object(f_[kTraits], "traits", traits)) return err;
    if (traits) return read_user_traits(*traits, "traits.");
    return std::nullopt;
  }

  std::optional<DecodeFailure> read_group() {
    std::string_view group;
    if (auto err = id_field(f_[kGroupId], "groupId", group_text_, group)) return err;
    if (group.empty()) return fail(DecodeError::kMissingGroupId, "field 'groupId' is required");
    if (event_.explicit_account.empty()) {
      if (auto err = check_length("groupId", group)) return err;
      event_.explicit_account.assign(group);
    }
    std::optional<object> traits;
    if (auto err = as_object(f_[kTraits], "traits", traits)) return err;
    if (traits) return read_account_traits(*traits);
    return std::nullopt;
  }

  /// Keeps the traits the model reads, in the order of Model::account_traits() (sorted).
  std::optional<DecodeFailure> read_account_traits(const object& traits) {
    const auto& names = model_.account_traits();
    std::vector<Field> values(names.size());
    for (const simdjson::dom::key_value_pair kv : traits) {
      if (kv.value.is_null()) continue;
      auto it = std::lower_bound(names.begin(), names.end(), kv.key);
      if (it == names.end() || *it != kv.key) continue;
      auto& slot = values[static_cast<std::size_t>(it - names.begin())];
      if (!slot) slot = kv.value;
    }
    for (std::size_t i = 0; i < names.size(); ++i)
      if (values[i])
        if (auto err = add_trait(names[i], *values[i])) return err;
    return std::nullopt;
  }

  std::optional<DecodeFailure> add_number_trait(const std::string& name, bool numeric_trait,
                                                double d) {
    if (!std::isfinite(d) || (numeric_trait && (d < 0 || d > 1e9)))
      return fail(DecodeError::kInvalidValue,
                  "field 'traits." + name + "' is out of range" +
                      (numeric_trait ? " (0 to 1000000000)" : " (a finite number)"));
    event_.account_traits.push_back({name, d});
    return std::nullopt;
  }

  std::optional<DecodeFailure> add_trait(const std::string& name, const element& value) {
    const bool numeric_trait = name == "employees" || name == "seats" || name == "seat_limit";
    const auto key = [&name] { return "traits." + name; };  // built only for an error
    switch (value.type()) {
      case element_type::INT64:
      case element_type::UINT64:
      case element_type::DOUBLE: {
        double d = 0;
        if (value.get_double().get(d) != simdjson::SUCCESS) return wrong_type(key(), "a number");
        return add_number_trait(name, numeric_trait, d);
      }
      case element_type::STRING: {
        std::string_view s;
        if (value.get_string().get(s) != simdjson::SUCCESS) return wrong_type(key(), "a string");
        if (numeric_trait) {
          // Segment's spec types `employees` as a string ("250"), and sources send counts
          // either way: a string that holds a decimal number is that number.
          const auto d = parse_decimal(s);
          if (!d) return wrong_type(key(), "a number or a string holding one");
          return add_number_trait(name, numeric_trait, *d);
        }
        if (s.size() > model_.config().decoder.max_id_bytes)
          return fail(DecodeError::kIdTooLong, "field '" + key() + "' is too long");
        event_.account_traits.push_back({name, lower_trimmed(s)});
        return std::nullopt;
      }
      case element_type::BOOL: {
        if (numeric_trait) return wrong_type(key(), "a number");
        bool b = false;
        if (value.get_bool().get(b) != simdjson::SUCCESS) return wrong_type(key(), "a boolean");
        event_.account_traits.push_back({name, b});
        return std::nullopt;
      }
      default:
        return wrong_type(key(), "a string, number or boolean");
    }
  }

  const Model& model_;
  std::array<Field, kTopFieldCount> f_;
  Event& event_;
  bool widened_;
  std::string user_text_, anon_text_, group_text_;  ///< numeric ids as text (as_id)
};

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

/// Whether an integer's digits (JSON has no leading zeros) are beyond what simdjson's DOM reads
/// as one: above UINT64_MAX, or below INT64_MIN when negative.
bool beyond_64_bits(std::string_view digits, bool negative) {
  const std::string_view limit = negative ? "9223372036854775808" : "18446744073709551615";
  return digits.size() != limit.size() ? digits.size() > limit.size() : digits > limit;
}

/// `json` with every integer beyond 64 bits outside strings written as a decimal ("…7" →
/// "…7.0"), or nullopt if it has none. JSON sets no limit on a number's digits (RFC 8259), but
/// simdjson's DOM refuses such integers (NUMBER_ERROR); as decimals they parse as doubles.
/// Integers within 64 bits are left as they are. Only a document that failed to parse is
/// scanned.
std::optional<std::string> widen_long_integers(std::string_view json) {
  std::string out;
  std::size_t copied = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < json.size(); ++i) {
    const char c = json[i];
    if (in_string) {
      if (c == '\\')
        ++i;  // the escaped character, a quote included
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
      continue;
    }
    if (c != '-' && !is_digit(c)) continue;
    std::size_t end = i + (c == '-' ? 1 : 0);
    const std::size_t digits_from = end;
    while (end < json.size() && is_digit(json[end])) ++end;
    const bool integer =
        end == json.size() || (json[end] != '.' && json[end] != 'e' && json[end] != 'E');
    if (integer && beyond_64_bits(json.substr(digits_from, end - digits_from), c == '-')) {
      out.append(json.substr(copied, end - copied)).append(".0");
      copied = end;
    }
    // The rest of the number (fraction, exponent), so that its digits are not taken for another.
    while (end < json.size() && (is_digit(json[end]) || json[end] == '.' || json[end] == 'e' ||
                                 json[end] == 'E' || json[end] == '+' || json[end] == '-'))
      ++end;
    i = end - 1;
  }
  if (copied == 0) return std::nullopt;  // none widened (a widened number ends past 0)
  out.append(json.substr(copied));
  return out;
}

}  // namespace

void Event::reset() {
  type = CallType::kIgnored;
  message_id.clear();
  user.clear();
  explicit_account.clear();
  name.clear();
  timestamp = 0;
  rule = nullptr;
  quantity = 1.0;
  role.reset();
  department.reset();
  account_traits.clear();
}

static_assert(kInputPadding >= simdjson::SIMDJSON_PADDING);

std::optional<DecodeFailure> EventDecoder::decode_into(std::string_view json, Event& out,
                                                       Padding padding) {
  out.reset();
  if (json.size() > impl_->capacity)
    return fail(DecodeError::kOversized, std::to_string(json.size()) +
                                             " bytes exceeds the limit of " +
                                             std::to_string(impl_->capacity));
  const char* bytes = json.data();
  if (padding == Padding::kNone) {
    // Copy into a buffer with simdjson's required padding. The padding must be readable, not
    // zero: the buffer was value-initialised once. (The copy drew ~4 % of the score stage's
    // samples; end to end, parsing in place measured within ±2 % of it: bench/RESULTS.md §1.)
    std::memcpy(impl_->buffer.get(), json.data(), json.size());
    bytes = impl_->buffer.get();
  }
  element doc;
  auto err = impl_->parser.parse(bytes, json.size(), false).get(doc);
  bool widened = false;
  if (err == simdjson::NUMBER_ERROR) {
    // Perhaps an integer longer than 64 bits, valid JSON in a property the model may not even
    // read (an order number): parsed again with such integers as doubles rather than lost.
    // Numbers the model reads are range-checked as always, and ids refuse doubles here.
    if (auto wide = widen_long_integers(json);
        wide && wide->size() <= widened_capacity(impl_->capacity)) {
      std::memcpy(impl_->buffer.get(), wide->data(), wide->size());
      const auto retried = impl_->parser.parse(impl_->buffer.get(), wide->size(), false).get(doc);
      widened = retried == simdjson::SUCCESS;
      if (widened) err = retried;
    }
  }
  if (err) return fail(DecodeError::kMalformedJson, simdjson::error_message(err));
  object root;
  if (doc.get_object().get(root) != simdjson::SUCCESS)
    return fail(DecodeError::kNotAnObject, "an event must be a JSON object");
  return Reader(model_, root, out, widened).run();
}

DecodeResult EventDecoder::decode(std::string_view json) {
  Event event;
  if (auto failure = decode_into(json, event)) return std::move(*failure);
  return event;
}

}  // namespace pqa::rollup
