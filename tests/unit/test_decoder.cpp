// The one event decoder: valid calls, every rejection reason, and hostile inputs.
#include <catch2/catch.hpp>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "pqa/rollup/event.h"

using namespace pqa::rollup;

namespace {

struct Fixture {
  Model model{ModelConfig{}};
  EventDecoder decoder{model};

  Event ok(const std::string& json) {
    auto r = decoder.decode(json);
    INFO(json);
    REQUIRE(r.ok());
    return r.event();
  }
  DecodeError error(const std::string& json) {
    auto r = decoder.decode(json);
    INFO(json);
    REQUIRE_FALSE(r.ok());
    return r.failure().code;
  }
};

}  // namespace

TEST_CASE_METHOD(Fixture, "decoder reads a track call with context.groupId", "[decoder]") {
  auto e = ok(R"({"type":"track","userId":"u1","event":"Seat Added","messageId":"m1",
                  "timestamp":"2026-01-05T10:00:00.250Z","properties":{"seats":5},
                  "context":{"groupId":"acme","traits":{"role":"Admin","department":" Sales "}}})");
  CHECK(e.type == CallType::kTrack);
  CHECK(e.user.str() == "u1");
  CHECK(e.explicit_account.str() == "acme");
  CHECK(e.message_id == "m1");
  CHECK(e.name == "Seat Added");
  REQUIRE(e.rule != nullptr);
  CHECK(e.rule->kind == EventKind::kProvisioning);
  CHECK(e.quantity == 5.0);
  CHECK(e.timestamp == 1767607200250);
  CHECK(e.role == "admin");
  CHECK(e.department == "sales");
}

TEST_CASE_METHOD(Fixture, "decoder treats unnamed track events as usage", "[decoder]") {
  auto e = ok(R"({"type":"track","anonymousId":"anon-1","event":"Dashboard Viewed",
                  "timestamp":"2026-01-05T10:00:00Z"})");
  CHECK(e.rule == nullptr);
  CHECK(e.user.str() == "anon-1");  // anonymousId stands in for a missing userId
  CHECK(e.explicit_account.empty());
  CHECK(e.quantity == 1.0);
}

TEST_CASE_METHOD(Fixture, "decoder reads group calls with account traits", "[decoder]") {
  auto e = ok(R"({"type":"group","userId":"u1","groupId":"acme","timestamp":"2026-01-05T10:00:00Z",
                  "traits":{"industry":"Software","employees":250,"plan":"team","seats":12,
                            "seat_limit":20,"website":"acme.test","nested":{"x":1}}})");
  CHECK(e.type == CallType::kGroup);
  CHECK(e.explicit_account.str() == "acme");
  // Only traits the model reads are kept; names are sorted by Model::account_traits().
  REQUIRE(e.account_traits.size() == 5);
  CHECK(e.account_traits[0] == Trait{"employees", 250.0});
  CHECK(e.account_traits[1] == Trait{"industry", std::string("software")});
}

TEST_CASE_METHOD(
    Fixture,
    "decoder reads numeric account traits sent as strings, as Segment's spec types employees",
    "[decoder]") {
  auto e = ok(R"({"type":"group","userId":"u1","groupId":"acme","timestamp":"2026-01-05T10:00:00Z",
                  "traits":{"employees":" 250 ","seats":"12","seat_limit":"2e1"}})");
  REQUIRE(e.account_traits.size() == 3);
  CHECK(e.account_traits[0] == Trait{"employees", 250.0});
  CHECK(e.account_traits[1] == Trait{"seat_limit", 20.0});
  CHECK(e.account_traits[2] == Trait{"seats", 12.0});
  const std::string t = R"("timestamp":"2026-01-05T10:00:00Z")";
  for (const char* text : {"51-200", "1,000", "", " ", "0x10", "nan", "inf", "+5", "12 seats"}) {
    INFO(text);
    const auto r =
        decoder.decode(R"({"type":"group","userId":"u","groupId":"a","traits":{"employees":")" +
                       std::string(text) + R"("},)" + t + "}");
    REQUIRE_FALSE(r.ok());
    CHECK(r.failure().code == DecodeError::kInvalidType);
    CHECK(r.failure().message() ==
          "invalid_type: field 'traits.employees' must be a number or a string holding one");
  }
  const auto negative = decoder.decode(
      R"({"type":"group","userId":"u","groupId":"a","traits":{"seats":"-3"},)" + t + "}");
  REQUIRE_FALSE(negative.ok());
  CHECK(negative.failure().code == DecodeError::kInvalidValue);
}

TEST_CASE_METHOD(Fixture, "decoder accepts and ignores page, screen and alias", "[decoder]") {
  for (const char* t : {"page", "screen", "alias"}) {
    auto e = ok(std::string(R"({"type":")") + t + R"("})");
    CHECK(e.type == CallType::kIgnored);
  }
}

TEST_CASE_METHOD(Fixture, "decoder gives a specific reason for each invalid input", "[decoder]") {
  const std::string t = R"("timestamp":"2026-01-05T10:00:00Z")";
  CHECK(error("") == DecodeError::kMalformedJson);
  CHECK(error("{") == DecodeError::kMalformedJson);
  CHECK(error(R"({"type":"track",})") == DecodeError::kMalformedJson);
  CHECK(error("[1,2]") == DecodeError::kNotAnObject);
  CHECK(error("\"track\"") == DecodeError::kNotAnObject);
  CHECK(error(R"({"userId":"u"})") == DecodeError::kMissingType);
  CHECK(error(R"({"type":7})") == DecodeError::kInvalidType);
  CHECK(error(R"({"type":"purchase"})") == DecodeError::kUnknownType);
  CHECK(error(R"({"type":"track","event":"x",)" + t + "}") == DecodeError::kMissingUserId);
  CHECK(error(R"({"type":"track","userId":"","event":"x",)" + t + "}") ==
        DecodeError::kMissingUserId);
  CHECK(error(R"({"type":"track","userId":true,"event":"x",)" + t + "}") ==
        DecodeError::kInvalidType);
  CHECK(error(R"({"type":"track","userId":"u","event":"x"})") == DecodeError::kMissingTimestamp);
  CHECK(error(R"({"type":"track","userId":"u","event":"x","timestamp":"2026-13-45T00:00:00Z"})") ==
        DecodeError::kBadTimestamp);
  CHECK(error(R"({"type":"track","userId":"u","event":"x","timestamp":1767607200})") ==
        DecodeError::kInvalidType);
  CHECK(error(R"({"type":"track","userId":"u",)" + t + "}") == DecodeError::kMissingEventName);
  CHECK(error(R"({"type":"track","userId":"u","event":["x"],)" + t + "}") ==
        DecodeError::kInvalidType);
  CHECK(error(R"({"type":"group","userId":"u",)" + t + "}") == DecodeError::kMissingGroupId);
  CHECK(error(R"({"type":"track","userId":"u","event":"x","context":"acme",)" + t + "}") ==
        DecodeError::kInvalidType);
  // `properties` of the wrong type on any event, not only on those whose quantity is read.
  CHECK(error(R"({"type":"track","userId":"u","event":"Other","properties":"lots",)" + t + "}") ==
        DecodeError::kInvalidType);
  CHECK(error(R"({"type":"track","userId":"u","event":"Seat Added","properties":[1],)" + t + "}") ==
        DecodeError::kInvalidType);
  CHECK(error(R"({"type":"track","userId":"u","event":"Seat Added","properties":{"seats":"5x"},)" +
              t + "}") == DecodeError::kInvalidType);
  CHECK(error(R"({"type":"track","userId":"u","event":"Seat Added","properties":{"seats":true},)" +
              t + "}") == DecodeError::kInvalidType);
  CHECK(error(R"({"type":"track","userId":"u","event":"Seat Added","properties":{"seats":-2},)" +
              t + "}") == DecodeError::kInvalidValue);
  CHECK(error(R"({"type":"track","userId":"u","event":"Seat Added","properties":{"seats":2.5},)" +
              t + "}") == DecodeError::kInvalidValue);
  CHECK(error(R"({"type":"group","userId":"u","groupId":"a","traits":{"employees":"many"},)" + t +
              "}") == DecodeError::kInvalidType);
  CHECK(error(R"({"type":"identify","userId":"u","traits":{"role":5},)" + t + "}") ==
        DecodeError::kInvalidType);
  CHECK(error(R"({"type":"track","userId":")" + std::string(300, 'x') + R"(","event":"x",)" + t +
              "}") == DecodeError::kIdTooLong);
}

TEST_CASE_METHOD(Fixture, "numeric ids are taken as their decimal text, as Segment allows",
                 "[decoder]") {
  // Segment's libraries accept numbers for userId, anonymousId and groupId.
  const std::string t = R"("timestamp":"2026-01-05T10:00:00Z")";
  auto r = decoder.decode(R"({"type":"track","userId":42,"event":"x","context":{"groupId":7},)" +
                          t + "}");
  REQUIRE(r.ok());
  CHECK(r.event().user.str() == "42");
  CHECK(r.event().explicit_account.str() == "7");
  r = decoder.decode(R"({"type":"group","anonymousId":9007199254740993,"groupId":42.0,)" + t + "}");
  REQUIRE(r.ok());
  CHECK(r.event().user.str() == "9007199254740993");
  CHECK(r.event().explicit_account.str() == "42");  // 42.0 is the account 42 is
  r = decoder.decode(R"({"type":"group","userId":"u","groupId":18446744073709551615,)" + t + "}");
  REQUIRE(r.ok());
  CHECK(r.event().explicit_account.str() == "18446744073709551615");
  // A producer writing floats names the ids a producer writing integers does.
  const auto account_of = [&](const std::string& number) {
    auto d = decoder.decode(R"({"type":"group","userId":"u","groupId":)" + number + "," + t + "}");
    return d.ok() ? std::string(d.event().explicit_account.str()) : std::string("(refused)");
  };
  CHECK(account_of("100000.0") == "100000");
  CHECK(account_of("1e5") == "100000");
  CHECK(account_of("-0.0") == "0");
  CHECK(account_of("42.5") == "42.5");
  CHECK(account_of("0.000001") == "0.000001");
  CHECK(account_of("1e-7") == "1e-07");
  CHECK(account_of("1e25") == "1e+25");
  CHECK(account_of("-1.7976931348623157e308") == "-1.7976931348623157e+308");
}

TEST_CASE_METHOD(Fixture, "a count in properties may be a string holding a number", "[decoder]") {
  const std::string t = R"("timestamp":"2026-01-05T10:00:00Z")";
  auto r = decoder.decode(
      R"({"type":"track","userId":"u","event":"Seat Added","properties":{"seats":"3"},)" + t + "}");
  REQUIRE(r.ok());
  CHECK(r.event().quantity == 3.0);
  r = decoder.decode(
      R"({"type":"track","userId":"u","event":"Seat Added","properties":{"seats":"three"},)" + t +
      "}");
  REQUIRE_FALSE(r.ok());
  CHECK(r.failure().message() ==
        "invalid_type: field 'properties.seats' must be a number or a string holding one");
}

TEST_CASE("input quoted in an error cannot forge a line or cut it short", "[decoder]") {
  CHECK(quote_input("x\nline 1: forged") == "x\\x0aline 1: forged");
  CHECK(quote_input(std::string("gh\0ost", 6)) == "gh\\x00ost");
  // Cut at 64 bytes, never inside a UTF-8 character (each é is two bytes).
  std::string e_acute;
  for (int i = 0; i < 40; ++i) e_acute += "\xC3\xA9";
  CHECK(quote_input(e_acute) == e_acute.substr(0, 64));
  CHECK(quote_input("a" + e_acute) == "a" + e_acute.substr(0, 62));  // not 63 bytes
}

TEST_CASE_METHOD(Fixture, "failure messages name the field", "[decoder]") {
  auto r = decoder.decode(R"({"type":"track","userId":[42],"event":"x"})");
  REQUIRE_FALSE(r.ok());
  CHECK(r.failure().message() == "invalid_type: field 'userId' must be a string or a number");
  CHECK(to_string(DecodeError::kUnresolvedAccount) == "unresolved_account");
  // Nested fields by their whole path; a range named with the value out of it.
  const std::string t = R"("timestamp":"2026-01-01T00:00:00Z")";
  const auto message = [&](const std::string& json) {
    auto decoded = decoder.decode(json);
    return decoded.ok() ? std::string("(accepted)") : decoded.failure().message();
  };
  CHECK(message(R"({"type":"identify","userId":"u","traits":{"role":5},)" + t + "}") ==
        "invalid_type: field 'traits.role' must be a string");
  CHECK(message(
            R"({"type":"track","userId":"u","event":"x","context":{"traits":{"department":[1]}},)" +
            t + "}") == "invalid_type: field 'context.traits.department' must be a string");
  CHECK(message(R"({"type":"group","userId":"u","groupId":"a","traits":{"employees":-5},)" + t +
                "}") ==
        "invalid_value: field 'traits.employees' is out of range (0 to 1000000000)");
}

TEST_CASE("decoder rejects messages over the configured size", "[decoder]") {
  ModelConfig config;
  config.decoder.max_event_bytes = 128;
  Model model(config);
  EventDecoder decoder(model);
  std::string big =
      R"({"type":"track","userId":"u","event":"x","timestamp":"2026-01-05T10:00:00Z",)"
      R"("properties":{"pad":")" +
      std::string(200, 'a') + "\"}}";
  auto r = decoder.decode(big);
  REQUIRE_FALSE(r.ok());
  CHECK(r.failure().code == DecodeError::kOversized);
}

TEST_CASE_METHOD(Fixture, "hostile inputs never crash the decoder", "[decoder][hostile]") {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  // An escaped NUL inside an id, and a raw one (which JSON forbids).
  const std::string nul_inside =
      R"({"type":"track","userId":"u\u0000","event":"x","timestamp":"2026-01-05T10:00:00Z"})";
  std::string raw_nul = R"({"type":"track","userId":"u)";
  raw_nul.push_back('\0');
  raw_nul += R"(","event":"x","timestamp":"2026-01-05T10:00:00Z"})";
  // Each is refused for its own reason, or accepted: a crash-free decoder that accepted
  // everything would pass a check of "returns" alone.
  const std::optional<DecodeError> accepted;
  const std::vector<std::pair<std::string, std::optional<DecodeError>>> inputs = {
      {deep.substr(0, 20000), DecodeError::kMalformedJson},
      {std::string("{\"type\":\"track\",\"userId\":\"\xff\xfe\",\"event\":\"x\"}"),
       DecodeError::kMalformedJson},  // bad UTF-8
      {R"({"type":"track","userId":"u","event":"x","timestamp":"2026-01-05T10:00:00Z","properties":{"seats":1e400}})",
       DecodeError::kMalformedJson},  // not a finite double
      // A duplicated key: the first wins ("track"), which then lacks its timestamp.
      {R"({"type":"track","type":"group","userId":"u"})", DecodeError::kMissingTimestamp},
      {R"({"type":"track","userId":"u","event":"Seat Added","timestamp":"2026-01-05T10:00:00Z","properties":{"seats":99999999999999999999}})",
       DecodeError::kInvalidValue},  // beyond 64-bit integers: parsed, then out of range
      {std::string(1000, ' '), DecodeError::kMalformedJson},
      {"{\"a\":\"\\ud800\"}", DecodeError::kMalformedJson},  // a lone surrogate
      {nul_inside, accepted},
      {raw_nul, DecodeError::kMalformedJson},
      {R"({"type":"group","userId":"u","groupId":"a","timestamp":"2026-02-30T00:00:00Z"})",
       DecodeError::kBadTimestamp},
      {R"({"type":"group","userId":"u","groupId":"a","timestamp":"1999-12-31T23:59:59Z"})",
       DecodeError::kBadTimestamp},
      {R"({"type":"group","userId":"u","groupId":"a","timestamp":"2026-01-05T10:00:00+25:00"})",
       DecodeError::kBadTimestamp},
  };
  for (const auto& [in, expected] : inputs) {
    INFO(pqa::rollup::quote_input(in, 120));
    auto r = decoder.decode(in);  // must return, accepted or rejected, without crashing
    REQUIRE(r.ok() == !expected.has_value());
    if (!expected) continue;
    CHECK(to_string(r.failure().code) == to_string(*expected));
    CHECK_FALSE(r.failure().message().empty());
  }
  // A NUL byte inside an id is data, not a terminator: the id keeps all its bytes.
  auto r = decoder.decode(nul_inside);
  REQUIRE(r.ok());
  CHECK(r.event().user.str().size() == 2);
}

TEST_CASE_METHOD(Fixture, "an integer longer than 64 bits is valid JSON, not a lost event",
                 "[decoder][hostile]") {
  // simdjson's DOM refuses integers over 64 bits; JSON does not. An order number in a property
  // the model never reads must not drop the event (it was malformed_json).
  auto r = decoder.decode(
      R"({"type":"track","userId":"u1","event":"Order Completed","timestamp":"2026-01-05T10:00:00Z",)"
      R"("properties":{"order_id":123456789012345678901234567890,"refund":-98765432109876543210987,)"
      R"("note":"\"12345678901234567890123\" stays as sent"},"context":{"groupId":"acme"}})");
  REQUIRE(r.ok());
  CHECK(r.event().name == "Order Completed");
  CHECK(r.event().explicit_account.str() == "acme");
  // A string that holds such digits is left as it is, escaped quotes and all.
  auto g = decoder.decode(
      R"({"type":"group","userId":"u1","groupId":"acme","timestamp":"2026-01-05T10:00:00Z",)"
      R"("traits":{"industry":"x\"123456789012345678901\"","employees":250,"big":123456789012345678901}})");
  REQUIRE(g.ok());
  CHECK(g.event().account_traits[1] ==
        Trait{"industry", std::string("x\"123456789012345678901\"")});
  // An id that long is refused, not rounded into a double that another id may share.
  auto id = decoder.decode(
      R"({"type":"track","userId":123456789012345678901234,"event":"x","timestamp":"2026-01-05T10:00:00Z","context":{"groupId":"acme"}})");
  REQUIRE_FALSE(id.ok());
  CHECK(id.failure().code == DecodeError::kInvalidValue);
  CHECK_THAT(id.failure().message(), Catch::Contains("userId"));
  // A traits number that long is read, and out of range like any other.
  auto seats = decoder.decode(
      R"({"type":"group","userId":"u1","groupId":"acme","timestamp":"2026-01-05T10:00:00Z","traits":{"seats":123456789012345678901}})");
  REQUIRE_FALSE(seats.ok());
  CHECK(seats.failure().code == DecodeError::kInvalidValue);
  // Only integers beyond 64 bits are widened: an id within them reads as anywhere else, and
  // so does a number-valued id that small.
  const std::string long_order = R"("properties":{"order_id":123456789012345678901},)";
  auto within =
      decoder.decode(R"({"type":"track","userId":12345678901234567890,"event":"x",)" + long_order +
                     R"("timestamp":"2026-01-05T10:00:00Z","context":{"groupId":42.0}})");
  REQUIRE(within.ok());
  CHECK(within.event().user.str() == "12345678901234567890");
  CHECK(within.event().explicit_account.str() == "42");
  // Negative: below INT64_MIN with 19 digits already.
  CHECK(
      decoder
          .decode(R"({"type":"track","userId":"u1","event":"x","timestamp":"2026-01-05T10:00:00Z",)"
                  R"("properties":{"refund":-9300000000000000000},"context":{"groupId":"acme"}})")
          .ok());
  // A message just within the size limit still fits once widened.
  const std::string head =
      R"({"type":"track","userId":"u1","event":"x","timestamp":"2026-01-05T10:00:00Z",)"
      R"("context":{"groupId":"acme"},"properties":{"n":123456789012345678901,"pad":")";
  const std::size_t limit = model.config().decoder.max_event_bytes;
  const std::string at_limit = head + std::string(limit - head.size() - 3, 'p') + "\"}}";
  REQUIRE(at_limit.size() == limit);
  CHECK(decoder.decode(at_limit).ok());
  // Beyond a double's range there is nothing to parse it as.
  auto huge = decoder.decode(
      R"({"type":"track","userId":"u1","event":"x","timestamp":"2026-01-05T10:00:00Z","properties":{"n":1e400,"m":123456789012345678901}})");
  REQUIRE_FALSE(huge.ok());
  CHECK(huge.failure().code == DecodeError::kMalformedJson);
}

TEST_CASE("timestamps parse ISO-8601 with offsets and fractions", "[decoder][time]") {
  CHECK(parse_timestamp("1970-01-01T00:00:00Z") == std::nullopt);  // before 2000
  CHECK(parse_timestamp("2000-01-01T00:00:00Z") == 946684800000);
  // The years' range holds in UTC, after the offset.
  CHECK_FALSE(parse_timestamp("2000-01-01T00:30:00+01:00").has_value());  // 1999 in UTC
  CHECK_FALSE(parse_timestamp("2099-12-31T23:00:00-05:00").has_value());  // 2100 in UTC
  CHECK(parse_timestamp("2099-12-31T23:59:59.999Z") == 4102444799999);
  CHECK(parse_timestamp("2026-01-05T10:00:00Z") == 1767607200000);
  CHECK(parse_timestamp("2026-01-05T12:00:00+02:00") == 1767607200000);
  CHECK(parse_timestamp("2026-01-05T05:30:00-0430") == 1767607200000);
  CHECK(parse_timestamp("2026-01-05T12:00:00+02") == 1767607200000);
  CHECK_FALSE(parse_timestamp("2026-01-05T12:00:00+02:").has_value());
  CHECK_FALSE(parse_timestamp("2026-01-05T12:00:00+2").has_value());
  CHECK_FALSE(parse_timestamp("2026-01-05T12:00:00+020").has_value());
  CHECK(parse_timestamp("2026-01-05 10:00:00.5Z") == 1767607200500);
  CHECK(parse_timestamp("2026-01-05T10:00:00.123456789Z") == 1767607200123);
  // RFC 3339: any number of fractional digits, and a leap second (the next minute's first).
  CHECK(parse_timestamp("2026-01-05T10:00:00.1234567891Z") == 1767607200123);
  CHECK(parse_timestamp("2026-01-05T09:59:60Z") == 1767607200000);
  CHECK_FALSE(parse_timestamp("2026-01-05T09:59:61Z").has_value());
  CHECK(parse_timestamp("2028-02-29T00:00:00Z").has_value());
  CHECK_FALSE(parse_timestamp("2027-02-29T00:00:00Z").has_value());
  CHECK_FALSE(parse_timestamp("2026-01-05T10:00:00").has_value());  // no zone: ambiguous
  CHECK_FALSE(parse_timestamp("2026-01-05T24:00:00Z").has_value());
  CHECK_FALSE(parse_timestamp("2026-01-05T10:00:00.Z").has_value());
  CHECK_FALSE(parse_timestamp("2026-01-05T10:00:00Zjunk").has_value());
  CHECK_FALSE(parse_timestamp("").has_value());
  CHECK(format_timestamp(1767607200123) == "2026-01-05T10:00:00.123Z");
  for (TimeMs t : {946684800000LL, 1767607200123LL, 4102444799999LL})
    CHECK(parse_timestamp(format_timestamp(t)) == t);
}

TEST_CASE("the common timestamp form reads as the general parser reads it", "[decoder][time]") {
  // "...SS.mmmZ" takes a fast path; the same text with "+00:00" for "Z" takes the general one.
  // Random texts of that form, with out-of-range fields and stray characters among them, must
  // get the same answer from both.
  std::mt19937 rng(7);
  auto two = [&](int lo, int hi) {
    const int v = std::uniform_int_distribution<int>(lo, hi)(rng);
    return (v < 10 ? "0" : "") + std::to_string(v);
  };
  int accepted = 0;
  for (int i = 0; i < 20'000; ++i) {
    std::string text = std::to_string(std::uniform_int_distribution<int>(1995, 2104)(rng)) + "-" +
                       two(0, 13) + "-" + two(0, 32) + "T" + two(0, 24) + ":" + two(0, 60) + ":" +
                       two(0, 60) + "." + two(0, 99) + std::to_string(rng() % 10) + "Z";
    REQUIRE(text.size() == 24);
    if (rng() % 8 == 0) text[rng() % 23] = "x/:-T. 9"[rng() % 8];  // a stray character
    std::string general = text;
    general.replace(23, 1, "+00:00");
    INFO(text);
    const auto fast = parse_timestamp(text);
    CHECK(fast == parse_timestamp(general));
    accepted += fast.has_value();
  }
  CHECK(accepted > 1000);  // both answers occur
  CHECK(accepted < 19'000);
}

TEST_CASE_METHOD(Fixture, "a reused event carries nothing over from the previous message",
                 "[decoder]") {
  Event e;
  REQUIRE_FALSE(decoder.decode_into(
      R"({"type":"group","userId":"u1","groupId":"acme","timestamp":"2026-01-05T10:00:00Z",
          "messageId":"m1","traits":{"plan":"team"},"context":{"traits":{"role":"admin"}}})",
      e));
  REQUIRE(e.role.has_value());
  REQUIRE_FALSE(decoder.decode_into(
      R"({"type":"track","anonymousId":"a2","event":"Dashboard Viewed",
          "timestamp":"2026-01-05T11:00:00Z"})",
      e));
  CHECK(e.type == CallType::kTrack);
  CHECK(e.user.str() == "a2");
  CHECK(e.message_id.empty());
  CHECK(e.explicit_account.empty());
  CHECK_FALSE(e.role.has_value());
  CHECK(e.account_traits.empty());
  CHECK(e.rule == nullptr);
  // After a rejection the event's content is unspecified; callers use only the failure.
  const auto failure = decoder.decode_into(
      R"({"type":"track","userId":"u3","event":5,"timestamp":"2026-01-05T10:00:00Z"})", e);
  REQUIRE(failure.has_value());
  CHECK(failure->code == DecodeError::kInvalidType);
}

TEST_CASE_METHOD(Fixture, "a message parsed in place decodes as a copied one, whatever follows it",
                 "[decoder]") {
  // Each message lies in one buffer directly followed by bytes that would change its meaning
  // if the parser took them for part of it; the last one by the padding alone.
  const std::string valid =
      R"({"type":"track","userId":"u1","event":"Seat Added","timestamp":"2026-01-05T10:00:00Z","properties":{"seats":2}})";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"type":"track","userId":"u1")", R"(,"event":"x","timestamp":"2026-01-05T10:00:00Z"})"},
      {valid, R"(}}}]]]"garbage)"},
      {R"({"type":"group","userId":"u","groupId":"acme","timestamp":"2026-01-05T10:00:00)",
       R"(Z"})"},
      {R"({"type":"track","userId":"u1","event":"Seat Added","timestamp":"2026-01-05T10:00:00Z","properties":{"seats":2)",
       R"(5}})"},
      {valid, ""},
  };
  std::string buffer;
  std::vector<std::string_view> messages;
  for (const auto& [message, follower] : cases) {
    buffer += message;
    buffer += follower;
  }
  buffer.append(kInputPadding, '\0');
  std::size_t at = 0;
  for (const auto& [message, follower] : cases) {
    messages.emplace_back(buffer.data() + at, message.size());
    at += message.size() + follower.size();
  }
  Event copied, in_place;
  for (const auto message : messages) {
    INFO(message);
    const auto copy_failure = decoder.decode_into(message, copied, Padding::kNone);
    const auto in_place_failure = decoder.decode_into(message, in_place, Padding::kReadable);
    REQUIRE(copy_failure.has_value() == in_place_failure.has_value());
    if (copy_failure) {
      CHECK(copy_failure->code == in_place_failure->code);
      continue;
    }
    CHECK(in_place.type == copied.type);
    CHECK(in_place.user.str() == copied.user.str());
    CHECK(in_place.name == copied.name);
    CHECK(in_place.timestamp == copied.timestamp);
    CHECK(in_place.quantity == copied.quantity);
  }
  // And the outcomes are the ones the messages alone give.
  CHECK(decoder.decode_into(messages[0], in_place, Padding::kReadable)->code ==
        DecodeError::kMalformedJson);
  REQUIRE_FALSE(decoder.decode_into(messages[1], in_place, Padding::kReadable));
  CHECK(in_place.quantity == 2.0);
  CHECK(decoder.decode_into(messages[3], in_place, Padding::kReadable)->code ==
        DecodeError::kMalformedJson);
  REQUIRE_FALSE(decoder.decode_into(messages[4], in_place, Padding::kReadable));
}
