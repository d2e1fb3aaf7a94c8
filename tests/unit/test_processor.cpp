// The pipeline around the core: identity resolution, rejection without side effects,
// deterministic ids, write-back caching and restart from the store.
#include <catch2/catch.hpp>
#include <fstream>
#include <random>
#include <tuple>

#include "harness_send.h"
#include "partitioning.h"

using namespace pqa;
using namespace pqa::test;

namespace {

/// A small mixed stream: three accounts, late events, traits, fabric events.
std::vector<std::string> sample_stream() {
  std::vector<std::string> lines;
  std::mt19937_64 rng(11);
  const char* events[] = {"Report Created",      "Dashboard Viewed", "Comment Added",
                          "Billing Page Viewed", "Seat Added",       "Workspace Created"};
  for (int a = 0; a < 3; ++a) {
    const std::string acc = "acc" + std::to_string(a);
    for (int u = 0; u < 6; ++u) {
      const std::string user = acc + "-u" + std::to_string(u);
      lines.push_back(group(user, acc, kT0, R"({"seats":8,"seat_limit":12,"employees":150})"));
      lines.push_back(identify(user, kT0, R"({"department":"d)" + std::to_string(u % 3) + "\"}"));
    }
  }
  for (int i = 0; i < 600; ++i) {
    const std::string acc = "acc" + std::to_string(rng() % 3);
    const std::string user = acc + "-u" + std::to_string(rng() % 6);
    TimeMs t = kT0 + i * 2 * kHour;
    if (rng() % 10 == 0) t -= static_cast<TimeMs>(rng() % (3 * kDay));  // late
    lines.push_back(track(user, events[rng() % 6], t));
  }
  return lines;
}

struct Run {
  std::vector<std::string> signals;
  std::vector<std::string> scores;
};

Run run_stream(const std::vector<std::string>& lines, scorer::ProcessorOptions options) {
  Harness h(shipped_model_config(), options);
  h.send_all(lines);
  h.processor.advance_to(kT0 + 120 * kDay);
  Run r;
  for (const auto& s : h.sink.signals) r.signals.push_back(scorer::to_json(s, "v"));
  h.processor.for_each_account([&](const rollup::AccountId& id, const rollup::AccountState& st) {
    r.scores.push_back(scorer::score_to_json(id, rollup::evaluate(h.model, st, kT0 + 120 * kDay),
                                             kT0 + 120 * kDay, "v"));
  });
  return r;
}

}  // namespace

TEST_CASE("track events without groupId resolve through the user's group call", "[processor]") {
  Harness h;
  h.send(group("u1", "acme", kT0));
  h.send(track("u1", "Report Created", kT0 + 1));
  CHECK(h.score_now("acme").seats.active_users == 1);
  // A later group call re-ties the user; an older one does not.
  h.send(group("u1", "globex", kT0 + 10));
  h.send(group("u1", "acme", kT0 + 5));
  h.send(track("u1", "Report Created", kT0 + 11));
  CHECK(h.score_now("globex").seats.active_users == 1);
  // The user who moved keeps counting in the old account until their activity there expires
  // (docs/architecture.md, Identity): the later event went to globex only.
  CHECK(h.score_now("acme").seats.active_users == 1);
  CHECK(h.user("acme", "u1").last_active == kT0 + 1);
  CHECK(h.user("globex", "u1").last_active == kT0 + 11);
  const int window = h.model.config().activity.active_window_days;
  h.processor.advance_to(kT0 + (window + 1) * rollup::kMsPerDay);
  CHECK(h.score_now("acme").seats.active_users == 0);
}

TEST_CASE("group calls of the same time tie a user to one account in either arrival order",
          "[processor][late]") {
  // Between two group calls of one time the greater account id wins (later_call_wins): the
  // account a later track without groupId lands in does not depend on processing order.
  for (const bool reversed : {false, true}) {
    INFO("reversed: " << reversed);
    Harness h;
    h.send(group("u1", reversed ? "globex" : "acme", kT0));
    h.send(group("u1", reversed ? "acme" : "globex", kT0));
    h.send(track("u1", "Report Created", kT0 + 1));
    CHECK(h.score_now("globex").seats.active_users == 1);
    CHECK(h.score_now("acme").seats.active_users == 0);
    // The router that keys the input by account (pqa-load, replay --partitions) agrees, or
    // the track would reach a partition whose processor never saw the user's group call.
    rollup::EventDecoder decoder(h.model);
    auto decoded = [&decoder](const std::string& line) {
      auto r = decoder.decode(line);
      REQUIRE(r.ok());
      return r.event();
    };
    scorer::AccountRouter router;
    (void)router.route(decoded(group("u1", reversed ? "globex" : "acme", kT0)));
    (void)router.route(decoded(group("u1", reversed ? "acme" : "globex", kT0)));
    CHECK(router.route(decoded(track("u1", "Report Created", kT0 + 1))) == "globex");
  }
}

TEST_CASE("an event with no resolvable account is rejected, not guessed", "[processor]") {
  Harness h;
  auto failure = h.processor.process(track("stranger", "Report Created", kT0));
  REQUIRE(failure.has_value());
  CHECK(failure->code == rollup::DecodeError::kUnresolvedAccount);
  CHECK(h.processor.stats().rejected == 1);
  CHECK(h.processor.watermark() == rollup::kNoTime);  // a rejected event does not move time
}

TEST_CASE("rejected events change no state and leave valid ones unaffected", "[processor]") {
  const auto clean = sample_stream();
  std::vector<std::string> poisoned;
  const std::vector<std::string> poison = {
      "not json", R"({"type":"track","userId":7})",
      R"({"type":"track","userId":"acc0-u1","event":"X","timestamp":"2099-13-01T00:00:00Z"})",
      R"({"type":"group","userId":"acc0-u1","timestamp":"2026-03-02T00:00:00Z"})",
      track("ghost", "Report Created", kT0 + 400 * kDay)};
  for (std::size_t i = 0; i < clean.size(); ++i) {
    poisoned.push_back(clean[i]);
    if (i % 50 == 0) poisoned.push_back(poison[i / 50 % poison.size()]);
  }
  Harness h;
  std::uint64_t rejected = 0;
  for (const auto& line : poisoned) rejected += h.processor.process(line).has_value();
  CHECK(rejected == (clean.size() + 49) / 50);
  CHECK(h.processor.stats().rejected == rejected);
  const auto a = run_stream(clean, {});
  Run b;
  h.processor.advance_to(kT0 + 120 * kDay);
  for (const auto& s : h.sink.signals) b.signals.push_back(scorer::to_json(s, "v"));
  CHECK(a.signals == b.signals);
}

TEST_CASE("the same input gives the same signals and ids", "[processor][determinism]") {
  const auto lines = sample_stream();
  const auto a = run_stream(lines, {});
  const auto b = run_stream(lines, {});
  REQUIRE(a.signals.size() > 10);
  CHECK(a.signals == b.signals);
  CHECK(a.scores == b.scores);
}

TEST_CASE("tiny caches and per-event flushes give identical results", "[processor][cache]") {
  const auto lines = sample_stream();
  const auto roomy = run_stream(lines, {});
  scorer::ProcessorOptions tiny;
  tiny.account_cache_entries = 1;
  tiny.user_cache_entries = 1;
  tiny.identity_cache_entries = 1;
  tiny.flush_every_events = 7;
  const auto cramped = run_stream(lines, tiny);
  CHECK(cramped.signals == roomy.signals);
  CHECK(cramped.scores == roomy.scores);
}

TEST_CASE("the changes a processor hands over come in strict key order", "[processor][cache]") {
  // Small caches, so that each batch mixes records evicted earlier (pending) with cached ones,
  // of all three keyspaces and the clock: the store ingests sorted batches as table files.
  scorer::ProcessorOptions options;
  options.account_cache_entries = 2;
  options.user_cache_entries = 5;
  options.identity_cache_entries = 3;
  options.auto_flush = false;
  Harness h(shipped_model_config(), options);
  const auto lines = sample_stream();
  std::size_t batches = 0, records = 0;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    (void)h.processor.process(lines[i]);
    if (i % 97 != 96) continue;
    const scorer::WriteSet changes = h.processor.take_changes();
    REQUIRE(changes.puts.size() > 3);
    for (std::size_t k = 1; k < changes.puts.size(); ++k)
      REQUIRE(changes.puts[k - 1].first < changes.puts[k].first);
    h.store->commit(changes);
    ++batches;
    records += changes.puts.size();
  }
  CHECK(batches == lines.size() / 97);
  CHECK(records > batches * 10);
}

TEST_CASE("each changed account is visited once, with the state its record holds",
          "[processor][cache]") {
  // Tiny account cache: some changed accounts are evicted (held encoded) before the batch is
  // taken, so both ways of collecting a change are visited.
  scorer::ProcessorOptions options;
  options.account_cache_entries = 2;
  options.auto_flush = false;
  Harness h(shipped_model_config(), options);
  const auto lines = sample_stream();
  const auto json_of = [&h](std::string_view account, const rollup::AccountState& state) {
    return scorer::score_to_json(rollup::AccountId(std::string(account)),
                                 rollup::evaluate(h.model, state, state.clock), state.clock,
                                 h.model.version());
  };
  std::size_t visited_total = 0;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    (void)h.processor.process(lines[i]);
    if (i % 53 != 52) continue;
    std::map<std::string, std::string> visited;
    const scorer::WriteSet changes =
        h.processor.take_changes([&](std::string_view account, const rollup::AccountState& state) {
          CHECK(visited.emplace(std::string(account), json_of(account, state)).second);
        });
    std::map<std::string, std::string> recorded;
    for (const auto& [key, value] : changes.puts) {
      if (key[0] != scorer::keys::kAccount) continue;
      const auto stored = scorer::decode_account(value);
      REQUIRE(stored);
      recorded.emplace(key.substr(1), json_of(key.substr(1), stored->state));
    }
    CHECK(visited == recorded);
    visited_total += visited.size();
    h.store->commit(changes);
  }
  CHECK(visited_total > lines.size() / 53);  // more than one account per batch on average
}

TEST_CASE("a large batch, encoded on two threads, is the batch one thread gives",
          "[processor][cache]") {
  // 30,000 users in 40 accounts: the final batch is over the size from which take_changes()
  // encodes the users' records on a helper thread; flushing every 1,000 events keeps every
  // batch of the other run under it.
  std::vector<std::string> lines;
  for (int u = 0; u < 30'000; ++u) {
    const std::string acc = "acc" + std::to_string(u % 40), user = "user" + std::to_string(u);
    lines.push_back(group(user, acc, kT0 + u * 1000, R"({"seats":50})"));
    if (u % 3 == 0) lines.push_back(track(user, "Report Created", kT0 + u * 1000 + 1));
  }
  auto final_store = [&](std::size_t flush_every, std::size_t* largest_batch) {
    scorer::ProcessorOptions options;
    options.auto_flush = false;
    Harness h(shipped_model_config(), options);
    *largest_batch = 0;
    for (std::size_t i = 0; i < lines.size(); ++i) {
      h.send(lines[i]);
      if ((i + 1) % flush_every != 0 && i + 1 != lines.size()) continue;
      const scorer::WriteSet changes = h.processor.take_changes();
      for (std::size_t k = 1; k < changes.puts.size(); ++k)
        REQUIRE(changes.puts[k - 1].first < changes.puts[k].first);
      *largest_batch = std::max(*largest_batch, changes.puts.size());
      h.store->commit(changes);
    }
    std::vector<std::pair<std::string, std::string>> all;
    h.store->scan("", [&](std::string_view k, std::string_view v) { all.emplace_back(k, v); });
    return all;
  };
  std::size_t one_batch = 0, small_batches = 0;
  const auto parallel = final_store(lines.size(), &one_batch);
  const auto serial = final_store(1'000, &small_batches);
  CHECK(one_batch > 60'000);  // users and identities: the helper thread ran
  CHECK(small_batches < 20'000);
  REQUIRE(parallel.size() == serial.size());
  CHECK(parallel == serial);
}

TEST_CASE("a processor restarted on the same store continues where it stopped",
          "[processor][restart]") {
  const auto lines = sample_stream();
  const auto whole = run_stream(lines, {});

  auto store = scorer::make_memory_store();
  const rollup::Model model(shipped_model_config());
  CollectingSink sink;
  const std::size_t half = lines.size() / 2;
  {
    scorer::Processor first(model, *store, sink);
    for (std::size_t i = 0; i < half; ++i) REQUIRE_FALSE(first.process(lines[i]));
    first.flush();
  }
  scorer::Processor second(model, *store, sink);
  CHECK(second.pending_timers() > 0);  // timers are rebuilt from the stored accounts
  for (std::size_t i = half; i < lines.size(); ++i) REQUIRE_FALSE(second.process(lines[i]));
  second.advance_to(kT0 + 120 * kDay);
  std::vector<std::string> signals;
  for (const auto& s : sink.signals) signals.push_back(scorer::to_json(s, "v"));
  CHECK(signals == whole.signals);
}

TEST_CASE("signal ids depend on the triggering input and the transition", "[processor]") {
  rollup::Signal s;
  s.kind = rollup::SignalKind::kThresholdCrossed;
  s.event_time = kT0;
  const rollup::AccountId acc("a");
  const auto id = scorer::make_signal_id("v", acc, s, "m1");
  CHECK(id == scorer::make_signal_id("v", acc, s, "m1"));
  CHECK(id != scorer::make_signal_id("v", acc, s, "m2"));
  CHECK(id != scorer::make_signal_id("v2", acc, s, "m1"));
  s.score.band = rollup::Band::kHot;
  CHECK(id != scorer::make_signal_id("v", acc, s, "m1"));
}

TEST_CASE("evicted changes past max_pending_bytes force a flush", "[processor][cache]") {
  scorer::ProcessorOptions options;
  options.account_cache_entries = 1;
  options.user_cache_entries = 1;
  options.flush_every_events = 1'000'000;
  options.max_pending_bytes = 1;  // any eviction of a changed record
  Harness h(shipped_model_config(), options);
  h.send_all(sample_stream());
  CHECK(h.processor.stats().flushes > 100);
  options.max_pending_bytes = 64u << 20;
  Harness roomy(shipped_model_config(), options);
  roomy.send_all(sample_stream());
  CHECK(roomy.processor.stats().flushes == 0);
}

TEST_CASE("an event far ahead of the stream's clock is rejected", "[processor][time]") {
  Harness h;
  h.send(group("u1", "acme", kT0));
  h.send(track("u1", "Report Created", kT0 + 29 * kDay));  // a quiet month is fine
  auto failure = h.processor.process(track("u1", "Report Created", kT0 + 60 * kDay));
  REQUIRE(failure.has_value());
  CHECK(failure->code == rollup::DecodeError::kTooFarAhead);
  CHECK(h.processor.watermark() == kT0 + 29 * kDay);  // the clock did not move
}

TEST_CASE("the clock an event may not be far ahead of is the newest event, not the watermark",
          "[processor][time]") {
  // With 7 days of allowed lateness the watermark trails the newest event by 7 days; the jump
  // is still measured from the newest event: 25 days after it is within 30.
  scorer::ProcessorOptions options;
  options.allowed_lateness_ms = 7 * kDay;
  Harness h(shipped_model_config(), options);
  h.send(group("u1", "acme", kT0));
  CHECK_FALSE(h.processor.process(track("u1", "Report Created", kT0 + 25 * kDay)).has_value());
  auto failure = h.processor.process(track("u1", "Report Created", kT0 + 56 * kDay));
  REQUIRE(failure.has_value());
  CHECK(failure->message().find("ahead of the stream's clock 2026-03-27") != std::string::npos);
  // An idle advance past the newest event (a partition silent for weeks) moves the clock too.
  h.processor.advance_to(kT0 + 100 * kDay);
  CHECK_FALSE(h.processor.process(track("u1", "Report Created", kT0 + 110 * kDay)).has_value());
}

TEST_CASE("with a time ceiling, even a partition's first event may not be far ahead",
          "[processor][time]") {
  // The service's ceiling: the wall clock plus max_clock_jump_days. Without it, a first event
  // stamped years ahead would become the clock, and every later event would be late.
  Harness h;
  h.processor.set_time_ceiling(kT0 + 30 * kDay);
  auto failure = h.processor.process(group("u1", "acme", kT0 + 2000 * kDay));
  REQUIRE(failure.has_value());
  CHECK(failure->code == rollup::DecodeError::kTooFarAhead);
  CHECK(failure->message().find("ahead of the wall clock") != std::string::npos);
  CHECK(h.processor.watermark() == rollup::kNoTime);
  CHECK_FALSE(h.processor.process(group("u1", "acme", kT0)).has_value());
  CHECK(h.processor.watermark() == kT0);
}

TEST_CASE("a corrupt stored record stops processing instead of being guessed around",
          "[processor][store]") {
  Harness h;
  scorer::WriteSet garbage;
  garbage.puts.emplace_back(scorer::keys::account("acme"), std::string("\xff\xff\x01garbage"));
  h.store->commit(garbage);
  // The error names the record, so that an operator can find it (a rollback to a build that
  // does not know a value a later one wrote makes the same error).
  CHECK_THROWS_WITH(h.processor.process(group("u1", "acme", kT0)),
                    Catch::Contains("corrupt state record under key 'Aacme'"));
  // A well-formed record with values no scorer writes (a bucket with no users) is corrupt too.
  scorer::StoredAccount bad;
  bad.state.buckets.push_back({20000, 0, 1, 1});
  CHECK_FALSE(scorer::decode_account(scorer::encode(bad)).has_value());
  bad.state.buckets[0].users = 1;
  CHECK(scorer::decode_account(scorer::encode(bad)).has_value());
}

TEST_CASE("corrupt state metadata stops start-up naming the record", "[processor][store]") {
  const rollup::Model model(rollup::ModelConfig{});
  CollectingSink sink;
  for (const char* name : {"watermark", "max_event_time"}) {
    auto store = scorer::make_memory_store();
    scorer::WriteSet meta;
    meta.puts.emplace_back(scorer::keys::meta(name), "17x");
    store->commit(meta);
    CHECK_THROWS_WITH(scorer::Processor(model, *store, sink),
                      Catch::Contains(std::string("meta '") + name + "' is not a time: '17x'"));
  }
  // An account record no decoder of this build reads (here: garbage) at start-up, by its id.
  auto store = scorer::make_memory_store();
  scorer::WriteSet garbage;
  garbage.puts.emplace_back(scorer::keys::account("acme\n"), std::string("\xff\x01"));
  store->commit(garbage);
  CHECK_THROWS_WITH(scorer::Processor(model, *store, sink),
                    Catch::Contains("corrupt account record during restore: account 'acme\\x0a'"));
}

namespace {

/// What a changelog holds for a processor's state: the records it hands over, nothing else
/// (in particular not the store's own metadata, such as the model version it was opened with).
std::unique_ptr<scorer::StateStore> changelog_copy(const rollup::ModelConfig& config) {
  const rollup::Model model(config);
  auto local = scorer::make_memory_store();
  CollectingSink sink;
  scorer::Processor first(model, *local, sink);
  for (const auto& line : sample_stream()) REQUIRE_FALSE(first.process(line));
  auto restored = scorer::make_memory_store();
  restored->commit(first.take_changes());
  REQUIRE_FALSE(restored->get(scorer::keys::meta("model_version")).has_value());
  return restored;
}

rollup::ModelConfig lower_bands() {
  auto lower = shipped_model_config();
  lower.bands = {10.0, 20.0, 30.0, 3.0};  // every active account is now at least qualified
  return lower;
}

/// What re-evaluating sample_stream()'s three accounts under lower_bands() publishes.
void check_all_crossed_up(const CollectingSink& sink) {
  const auto up = sink.of_kind(rollup::SignalKind::kThresholdCrossed);
  REQUIRE(up.size() == 3);
  for (const auto& s : up) CHECK(s.signal.score.band > s.signal.previous_band);
}

}  // namespace

TEST_CASE("a changed model re-evaluates stored accounts at start-up", "[processor][restart]") {
  auto store = scorer::make_memory_store();
  CollectingSink sink;
  {
    const rollup::Model model{shipped_model_config()};
    scorer::Processor first(model, *store, sink);
    for (const auto& line : sample_stream()) REQUIRE_FALSE(first.process(line));
    first.flush();
  }
  const rollup::Model model(lower_bands());
  sink.signals.clear();
  scorer::Processor second(model, *store, sink);
  second.advance_to(second.watermark());
  check_all_crossed_up(sink);
}

TEST_CASE("a store restored from a changelog written under another model is re-derived",
          "[processor][restart]") {
  auto store = changelog_copy(shipped_model_config());
  const rollup::Model model(lower_bands());
  CollectingSink sink;
  scorer::Processor second(model, *store, sink);
  second.advance_to(second.watermark());
  check_all_crossed_up(sink);

  // The re-evaluated accounts go back to the changelog under the model that evaluated them.
  const auto changes = second.take_changes();
  int accounts = 0;
  for (const auto& [key, value] : changes.puts) {
    if (key.front() != scorer::keys::kAccount) continue;
    ++accounts;
    CHECK(scorer::decode_account(value)->model_version == model.version());
  }
  CHECK(accounts == 3);
}

TEST_CASE("a store restored from a changelog of the same model is not re-evaluated",
          "[processor][restart]") {
  auto store = changelog_copy(shipped_model_config());
  const rollup::Model model(shipped_model_config());
  CollectingSink sink;
  scorer::Processor second(model, *store, sink);
  second.advance_to(second.watermark());
  CHECK(sink.signals.empty());
  CHECK(second.stats().timers_fired == 0);
}

TEST_CASE("records that name no model fall back to the store's, and get it when they change",
          "[processor][restart]") {
  // As a build before the per-record model version wrote them.
  auto store = scorer::make_memory_store();
  CollectingSink sink;
  {
    const rollup::Model model{shipped_model_config()};
    scorer::Processor first(model, *store, sink);
    for (const auto& line : sample_stream()) REQUIRE_FALSE(first.process(line));
    first.flush();
  }
  scorer::WriteSet unnamed;
  store->scan(std::string(1, scorer::keys::kAccount), [&](std::string_view k, std::string_view v) {
    auto stored = scorer::decode_account(v).value();
    stored.model_version.clear();
    unnamed.puts.emplace_back(std::string(k), scorer::encode(stored));
  });
  REQUIRE(unnamed.puts.size() == 3);
  store->commit(unnamed);

  SECTION("the store's model is this one: kept, and named at the next change") {
    const rollup::Model model{shipped_model_config()};
    sink.signals.clear();
    scorer::Processor second(model, *store, sink);
    second.advance_to(second.watermark());
    CHECK(sink.signals.empty());
    REQUIRE_FALSE(second.process(track("acc0-u0", "Report Created", second.watermark())));
    const auto changes = second.take_changes();
    const auto it = std::find_if(changes.puts.begin(), changes.puts.end(), [](const auto& kv) {
      return kv.first == scorer::keys::account("acc0");
    });
    REQUIRE(it != changes.puts.end());
    CHECK(scorer::decode_account(it->second)->model_version == model.version());
  }
  SECTION("the store's model is another: re-derived") {
    const rollup::Model model(lower_bands());
    sink.signals.clear();
    scorer::Processor second(model, *store, sink);
    second.advance_to(second.watermark());
    check_all_crossed_up(sink);
  }
  SECTION("the store names no model either (restored from an older changelog): fit re-derived") {
    scorer::WriteSet forget;
    forget.deletes.push_back(scorer::keys::meta("model_version"));
    store->commit(forget);
    const auto before = scorer::decode_account(*store->get(scorer::keys::account("acc0")));
    auto config = shipped_model_config();
    config.fit_rules = {{"employees", rollup::FitOp::kAtLeast, {}, 100.0, 0.0, 1.0}};
    const rollup::Model model(config);
    auto expected = before->state;
    rollup::refresh_trait_derived(model, expected);
    REQUIRE(expected.fit != before->state.fit);
    sink.signals.clear();
    scorer::Processor second(model, *store, sink);
    const auto after = scorer::decode_account(*store->get(scorer::keys::account("acc0")));
    CHECK(after->state.fit == expected.fit);
    CHECK(after->model_version == model.version());
    CHECK(after->timer_due == before->timer_due);  // no re-evaluation forced
  }
}

TEST_CASE("running totals give exactly what walking the buckets gives", "[processor][totals]") {
  Harness h;
  h.send_all(sample_stream());
  for (const char* id : {"acc0", "acc1", "acc2"}) {
    const auto live = h.state(id);  // totals maintained event by event
    REQUIRE(live.totals.valid);
    const auto reloaded = scorer::decode_account(scorer::encode({live, rollup::kNever, {}}));
    REQUIRE_FALSE(reloaded->state.totals.valid);  // evaluate walks the buckets
    const auto a = rollup::evaluate(h.model, live, h.processor.watermark());
    const auto b = rollup::evaluate(h.model, reloaded->state, h.processor.watermark());
    CHECK(a.score == b.score);  // bit-identical, not approximately equal
    CHECK(a.components.depth == b.components.depth);
    CHECK(a.active_departments == b.active_departments);
    CHECK(a.seats.active_users == b.seats.active_users);
  }
}

namespace {

std::vector<std::string> worked_example_lines() {
  std::ifstream in(std::string(PQA_SOURCE_DIR) + "/docs/examples/worked-example.jsonl");
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.push_back(line);
  return lines;
}

/// The first band crossing down whose time is after `after`.
const scorer::OutputSignal* first_crossing_down(const CollectingSink& sink, TimeMs after) {
  for (const auto& s : sink.signals)
    if (s.signal.kind == rollup::SignalKind::kThresholdCrossed &&
        s.signal.score.band < s.signal.previous_band && s.signal.event_time > after)
      return &s;
  return nullptr;
}

/// The worked example's account left silent, without lateness: its last event time and the
/// decay crossing down that its timer publishes.
struct SilentCrossing {
  TimeMs last_event = 0;
  scorer::OutputSignal signal;
};
SilentCrossing silent_crossing(const std::vector<std::string>& lines) {
  Harness prompt;
  prompt.send_all(lines);
  const TimeMs last_event = prompt.processor.max_event_time();
  prompt.processor.advance_to(last_event + 90 * kDay);
  const auto* crossing = first_crossing_down(prompt.sink, last_event);
  REQUIRE(crossing != nullptr);
  return {last_event, *crossing};
}

}  // namespace

TEST_CASE("an account's own event past its pending timer fires the timer first, late or not",
          "[processor][time]") {
  // The worked example's account, silent until a day and a half past its decay crossing, then
  // used again. Without lateness the watermark passes the crossing first: down, then up. With
  // a day of lateness the watermark is still before the crossing when the event comes; applied
  // first, the event would reset the decay and hide the crossing from the timer.
  // Two weeks later, the account has three timers due before its event (down to nurture, the
  // seat-velocity window's end, down to cold): each fires in turn, as without lateness, not
  // only the first.
  const auto lines = worked_example_lines();
  const TimeMs due = silent_crossing(lines).signal.signal.event_time;

  using Transition = std::tuple<rollup::SignalKind, rollup::Band, rollup::Band, TimeMs>;
  for (const TimeMs event_time : {due + kDay / 2, due + 14 * kDay}) {
    CAPTURE(event_time - due);
    std::vector<std::vector<Transition>> runs;
    for (const TimeMs lateness : {TimeMs{0}, kDay, 5 * kDay}) {
      scorer::ProcessorOptions options;
      options.allowed_lateness_ms = lateness;
      Harness h(shipped_model_config(), options);
      h.send_all(lines);
      const std::size_t before = h.sink.signals.size();
      h.send(track("u1", "Dashboard Viewed", event_time, "{}", "acme"));
      std::vector<Transition> transitions;
      for (std::size_t i = before; i < h.sink.signals.size(); ++i) {
        const auto& s = h.sink.signals[i].signal;
        transitions.emplace_back(s.kind, s.previous_band, s.score.band, s.event_time);
      }
      runs.push_back(transitions);
    }
    REQUIRE(runs[0].size() >= (event_time > due + kDay ? 3u : 1u));
    CHECK(std::get<3>(runs[0][0]) == due);
    CHECK(std::get<2>(runs[0][0]) < std::get<1>(runs[0][0]));  // down
    if (event_time > due + kDay) {
      CHECK(std::get<2>(runs[0][1]) == rollup::Band::kCold);     // down again, silent
      CHECK(std::get<2>(runs[0].back()) > rollup::Band::kCold);  // and up with the event
    }
    CHECK(runs[1] == runs[0]);
    CHECK(runs[2] == runs[0]);
  }
}

TEST_CASE("allowed lateness delays a decay timer, not what it computes", "[processor][time]") {
  const auto lines = worked_example_lines();
  REQUIRE(lines.size() == 47);
  // Without lateness: the qualified account of the worked example, left silent, crosses down.
  const auto [last_event, expected] = silent_crossing(lines);
  const TimeMs due = expected.signal.event_time;
  REQUIRE(due > last_event + kDay);

  // With a day of lateness the same timer fires only once another partition event is a day
  // past it, and computes the same crossing at the same time.
  scorer::ProcessorOptions options;
  options.allowed_lateness_ms = kDay;
  Harness late(shipped_model_config(), options);
  late.send_all(lines);
  CHECK(late.processor.watermark() == late.processor.max_event_time() - kDay);
  auto tick = [&](TimeMs t) { late.send(track("clock-user", "Page Loaded", t, "{}", "clock")); };
  for (TimeMs t = last_event + kDay; t < due - kDay; t += 10 * kDay) tick(t);
  tick(due + kDay / 2);
  CHECK(first_crossing_down(late.sink, last_event) == nullptr);
  tick(due + kDay);
  const auto* fired = first_crossing_down(late.sink, last_event);
  REQUIRE(fired != nullptr);
  CHECK(fired->signal.event_time == due);
  CHECK(fired->signal.score.score == expected.signal.score.score);
  CHECK(fired->signal.score.band == expected.signal.score.band);
}
