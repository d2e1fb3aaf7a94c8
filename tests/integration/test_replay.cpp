// `replay` end to end with real RocksDB state on disk.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "../unit/harness.h"
#include "processor.h"
#include "replay.h"
#include "state_codec.h"
#include "state_store.h"

using namespace pqa;
using namespace pqa::test;
namespace fs = std::filesystem;

namespace {

/// A temporary directory removed at the end of the test.
struct TempDir {
  fs::path path;
  TempDir() {
    std::string p = (fs::temp_directory_path() / "pqa-test-XXXXXX").string();
    REQUIRE(::mkdtemp(p.data()) != nullptr);
    path = p;
  }
  ~TempDir() { fs::remove_all(path); }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_lines(const std::string& path, const std::vector<std::string>& lines) {
  std::ofstream out(path, std::ios::binary);
  for (const auto& l : lines) out << l << '\n';
}

std::vector<std::string> stream(int accounts, int events, std::uint64_t seed) {
  std::vector<std::string> lines;
  std::mt19937_64 rng(seed);
  const char* names[] = {"Report Created",    "Dashboard Viewed",    "Comment Added",
                         "Seat Added",        "Billing Page Viewed", "SSO Configured",
                         "Workspace Created", "Seat Removed"};
  for (int a = 0; a < accounts; ++a) {
    for (int u = 0; u < 5; ++u) {
      const std::string user = "a" + std::to_string(a) + "u" + std::to_string(u);
      lines.push_back(group(user, "acct-" + std::to_string(a), kT0,
                            R"({"seats":6,"seat_limit":10,"employees":)" +
                                std::to_string(50 + a * 40) + R"(,"industry":"saas"})"));
      lines.push_back(identify(user, kT0, R"({"department":"d)" + std::to_string(u % 4) + "\"}"));
    }
  }
  for (int i = 0; i < events; ++i) {
    const int a = static_cast<int>(rng() % accounts);
    const std::string user = "a" + std::to_string(a) + "u" + std::to_string(rng() % 5);
    TimeMs t = kT0 + static_cast<TimeMs>(i) * 20 * 60'000;
    if (rng() % 20 == 0) t -= static_cast<TimeMs>(rng() % kDay);
    lines.push_back(track(user, names[rng() % 8], t, R"({"seats":1})"));
    if (i % 97 == 0) lines.push_back(R"({"type":"track","userId":5})");  // poison
  }
  return lines;
}

scorer::ReplayOptions options_in(const TempDir& dir, const std::string& input,
                                 const std::string& tag) {
  scorer::ReplayOptions o;
  o.config_path = std::string(PQA_SOURCE_DIR) + "/config/scorer.yaml";
  o.input = input;
  o.signals_path = dir / (tag + ".signals.jsonl");
  o.scores_path = dir / (tag + ".scores.jsonl");
  return o;
}

}  // namespace

TEST_CASE("replay output is byte-identical for the same input and config", "[replay]") {
  TempDir dir;
  write_lines(dir / "in.jsonl", stream(20, 3000, 1));
  auto a = options_in(dir, dir / "in.jsonl", "a");
  auto b = options_in(dir, dir / "in.jsonl", "b");
  a.as_of = b.as_of = "2026-06-01T00:00:00Z";
  REQUIRE(scorer::run_replay(a) == 0);
  REQUIRE(scorer::run_replay(b) == 0);
  const auto signals = read_file(a.signals_path);
  CHECK(std::count(signals.begin(), signals.end(), '\n') > 20);
  CHECK(signals == read_file(b.signals_path));
  CHECK(read_file(a.scores_path) == read_file(b.scores_path));
  CHECK(std::count(signals.begin(), signals.end(), '\n') > 0);
  const auto scores = read_file(a.scores_path);
  CHECK(std::count(scores.begin(), scores.end(), '\n') == 20);
}

TEST_CASE("replay --as-of fires decay crossings as signals", "[replay][timers]") {
  TempDir dir;
  write_lines(dir / "in.jsonl", stream(10, 1500, 2));
  auto plain = options_in(dir, dir / "in.jsonl", "plain");
  auto later = options_in(dir, dir / "in.jsonl", "later");
  later.as_of = "2026-09-01T00:00:00Z";
  REQUIRE(scorer::run_replay(plain) == 0);
  REQUIRE(scorer::run_replay(later) == 0);
  const auto before = read_file(plain.signals_path);
  const auto after = read_file(later.signals_path);
  REQUIRE(after.size() > before.size());
  CHECK(after.substr(0, before.size()) == before);  // the same prefix, then the timers
  CHECK(after.find(R"("direction":"down")", before.size()) != std::string::npos);
  const auto scores = read_file(later.scores_path);
  CHECK(scores.find(R"("band":"qualified")") == std::string::npos);
  CHECK(scores.find(R"("as_of":"2026-09-01T00:00:00.000Z")") != std::string::npos);
}

TEST_CASE("replay resumes from a --state-dir as if the input were one file", "[replay][restart]") {
  TempDir dir;
  const auto lines = stream(15, 2000, 3);
  write_lines(dir / "all.jsonl", lines);
  write_lines(dir / "first.jsonl", {lines.begin(), lines.begin() + 1200});
  write_lines(dir / "second.jsonl", {lines.begin() + 1200, lines.end()});
  auto whole = options_in(dir, dir / "all.jsonl", "whole");
  REQUIRE(scorer::run_replay(whole) == 0);
  auto first = options_in(dir, dir / "first.jsonl", "first");
  auto second = options_in(dir, dir / "second.jsonl", "second");
  first.state_dir = second.state_dir = dir / "state";
  REQUIRE(scorer::run_replay(first) == 0);
  REQUIRE(scorer::run_replay(second) == 0);
  CHECK(read_file(first.signals_path) + read_file(second.signals_path) ==
        read_file(whole.signals_path));
  CHECK(read_file(second.scores_path) == read_file(whole.scores_path));
}

TEST_CASE("replay state lives in RocksDB on disk", "[replay][rocksdb]") {
  TempDir dir;
  write_lines(dir / "in.jsonl", stream(5, 300, 4));
  auto o = options_in(dir, dir / "in.jsonl", "x");
  o.state_dir = dir / "state";
  REQUIRE(scorer::run_replay(o) == 0);
  REQUIRE(fs::exists(dir / "state/CURRENT"));
  scorer::RocksDbOptions options;
  options.path = dir / "state";
  auto store = scorer::open_rocksdb_store(options);
  int accounts = 0, users = 0;
  store->scan("A", [&](std::string_view, std::string_view v) {
    accounts += scorer::decode_account(v).has_value();
  });
  store->scan("U", [&](std::string_view, std::string_view v) {
    users += scorer::decode_user(v).has_value();
  });
  CHECK(accounts == 5);
  CHECK(users == 25);
  CHECK(store->get(scorer::keys::meta("watermark")).has_value());
  CHECK_FALSE(store->get("A-no-such-account").has_value());  // not found is not ""
}

TEST_CASE("replay's scores say when they were evaluated, with allowed lateness too",
          "[replay][late]") {
  // The stream's clock trails its newest event by the lateness; the account's own clock is at
  // its newest event, and that is when its score is evaluated.
  TempDir dir;
  write_lines(dir / "in.jsonl", {group("u1", "acme", kT0), track("u1", "Dashboard Viewed", kT0),
                                 track("u1", "Dashboard Viewed", kT0 + 2 * kDay)});
  std::ofstream(dir / "late.yaml") << "input: { allowed_lateness_ms: 86400000 }\n";
  const std::string at_last_event = R"("as_of":")" + ts(kT0 + 2 * kDay) + "\"";
  auto plain = options_in(dir, dir / "in.jsonl", "plain");
  plain.config_path = dir / "late.yaml";
  REQUIRE(scorer::run_replay(plain) == 0);
  CHECK(read_file(plain.scores_path).find(at_last_event) != std::string::npos);
  // An --as-of before the newest event (though after the stream's clock) gives way to it.
  auto early = options_in(dir, dir / "in.jsonl", "early");
  early.config_path = dir / "late.yaml";
  early.as_of = ts(kT0 + 2 * kDay - kHour);
  REQUIRE(scorer::run_replay(early) == 0);
  CHECK(read_file(early.scores_path).find(at_last_event) != std::string::npos);
}
