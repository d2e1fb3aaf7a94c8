// The JSON form of signals and scores is exactly the documented proto JSON form.
#include <google/protobuf/util/json_util.h>

#include <catch2/catch.hpp>

#include "harness_send.h"
#include "pqa/v1/pqa.pb.h"

using namespace pqa;
using namespace pqa::test;

namespace {
template <typename Msg>
Msg parse_strict(const std::string& json) {
  Msg msg;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;  // every field we write must exist in the .proto
  auto status = google::protobuf::util::JsonStringToMessage(json, &msg, options);
  INFO(json);
  INFO(status.ToString());
  REQUIRE(status.ok());
  return msg;
}
}  // namespace

TEST_CASE("signals serialise to the proto JSON form", "[output]") {
  Harness h;
  h.send(group("u1", "acme", kT0, R"({"seats":3,"employees":200,"industry":"saas"})"));
  h.send(identify("u1", kT0, R"({"role":"admin","department":"eng \"core\""})"));
  for (int i = 0; i < 30; ++i) h.send(track("u1", "Report Created", kT0));
  h.send(track("u1", "Bulk Invite Sent", kT0, R"({"count":9})"));
  h.send(track("u1", "Contact Sales Clicked", kT0));
  for (const char* u : {"u2", "u3"}) {
    h.send(group(u, "acme", kT0));
    h.send(identify(u, kT0, std::string(R"({"department":")") + u + R"("})"));
    for (int i = 0; i < 30; ++i) h.send(track(u, "Report Created", kT0));
  }
  for (auto kind : {rollup::SignalKind::kThresholdCrossed, rollup::SignalKind::kSeatExpansion,
                    rollup::SignalKind::kBreadthExpansion})
    REQUIRE_FALSE(h.sink.of_kind(kind).empty());
  CHECK(h.sink.of_kind(rollup::SignalKind::kBreadthExpansion)[0].signal.department ==
        "eng \"core\"");
  for (const auto& s : h.sink.signals) {
    const auto json = scorer::to_json(s, h.model.version());
    const auto msg = parse_strict<v1::Signal>(json);
    CHECK(msg.signal_id() == s.signal_id);
    CHECK(msg.signal_id().size() == 32);
    CHECK(msg.account_id() == "acme");
    CHECK(msg.kind() == rollup::to_string(s.signal.kind));
    CHECK(msg.model_version() == h.model.version());
    CHECK(msg.event_time().seconds() * 1000 + msg.event_time().nanos() / 1'000'000 ==
          s.signal.event_time);
    if (s.signal.kind == rollup::SignalKind::kBreadthExpansion)
      CHECK(msg.department() == s.signal.department);
    // Every kind carries the routing (a CRM field sync writes it from whichever comes).
    CHECK(msg.routing() == rollup::to_string(s.signal.score.routing));
  }
}

TEST_CASE("scores serialise to the proto JSON form", "[output]") {
  Harness h;
  h.send(group("u1", R"(a\"\\\n)", kT0, R"({"seats":3})"));  // a, quote, backslash, newline
  h.send(track("u1", "Report Created", kT0));
  const auto score = h.score_now("a\"\\\n");
  const auto json = scorer::score_to_json(rollup::AccountId("a\"\\\n"), score, kT0, "v");
  const auto msg = parse_strict<v1::AccountScore>(json);
  CHECK(msg.account_id() == "a\"\\\n");
  CHECK(msg.score() == Approx(score.score).margin(0.005));
  CHECK(msg.components().depth() == Approx(score.components.depth).margin(5e-5));
  CHECK(msg.seats().provisioned_seats() == 3);
  CHECK(msg.risk_flags_size() == 1);  // one active user of three seats
}

TEST_CASE("strings are escaped as JSON requires, and only where it requires", "[output]") {
  const auto escaped = [](std::string_view s) {
    std::string out;
    scorer::append_json_string(out, s);
    return out;
  };
  CHECK(escaped("") == R"("")");
  CHECK(escaped("plain text, ünïcode") == R"("plain text, ünïcode")");
  CHECK(escaped(R"(say "hi")") == R"("say \"hi\"")");
  CHECK(escaped(R"(a\b)") == R"("a\\b")");
  CHECK(escaped("\n\r\t") == R"("\n\r\t")");
  CHECK(escaped(std::string_view("x\0y\x1f", 4)) == R"("x\u0000y\u001f")");
  CHECK(escaped("\"lead and trail\\") == R"("\"lead and trail\\")");
  CHECK(escaped("\x7f") == "\"\x7f\"");  // DEL needs no escape in JSON
}
