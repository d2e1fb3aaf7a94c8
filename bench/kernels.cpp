// Google Benchmark kernels of the scoring core (no I/O): decoding one event, applying one
// event to an account, evaluating an account, and how applying scales with account size; and
// encoding the state records that replay and the service write to RocksDB.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "pqa/rollup/config.h"
#include "pqa/rollup/event.h"
#include "pqa/rollup/scoring.h"
#include "state_codec.h"

namespace {

using namespace pqa::rollup;

constexpr TimeMs kT0 = 1772409600000;  // 2026-03-02T00:00:00Z

const Model& model() {
  static const Model m{[] {
    ModelConfig c;
    c.fit_rules = {{"employees", FitOp::kBetween, {}, 50, 5000, 0.4},
                   {"industry", FitOp::kIn, {"software", "saas"}, 0, 0, 0.3},
                   {"plan", FitOp::kIn, {"team", "business"}, 0, 0, 0.3}};
    return c;
  }()};
  return m;
}

const std::string kTrack =
    R"({"type":"track","messageId":"m-123456","userId":"u-000042-00017","event":"Report Created",)"
    R"("timestamp":"2026-03-02T10:11:12.345Z","properties":{"duration_ms":40,"client":"web"},)"
    R"("context":{"groupId":"acc-000042"}})";
const std::string kGroup =
    R"({"type":"group","messageId":"m-1","userId":"u-000042-00017","groupId":"acc-000042",)"
    R"("timestamp":"2026-03-02T10:11:12.345Z","traits":{"industry":"software","employees":250,)"
    R"("plan":"team","seats":12,"seat_limit":20}})";

void BM_DecodeTrack(benchmark::State& state) {
  EventDecoder decoder(model());
  Event event;
  for (auto _ : state) benchmark::DoNotOptimize(decoder.decode_into(kTrack, event));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * kTrack.size()));
}
BENCHMARK(BM_DecodeTrack);

void BM_DecodeGroup(benchmark::State& state) {
  EventDecoder decoder(model());
  Event event;
  for (auto _ : state) benchmark::DoNotOptimize(decoder.decode_into(kGroup, event));
}
BENCHMARK(BM_DecodeGroup);

/// An account with `users` active users spread over departments and days.
struct Account {
  AccountState state;
  std::vector<UserState> users;
};

Account make_account(int users) {
  EventDecoder decoder(model());
  Account a;
  a.users.resize(static_cast<std::size_t>(users));
  for (int i = 0; i < users; ++i) {
    Event e = decoder.decode(kTrack).event();
    e.timestamp = kT0 + (i % 20) * kMsPerDay;
    e.department = "dept-" + std::to_string(i % 7);
    (void)apply_event(model(), a.state, a.users[static_cast<std::size_t>(i)], true, e,
                      kT0 + 20 * kMsPerDay);
  }
  return a;
}

/// Cost of one usage event for an existing user; should not depend on the account's size.
void BM_ApplyUsageEvent(benchmark::State& state) {
  Account a = make_account(static_cast<int>(state.range(0)));
  EventDecoder decoder(model());
  Event e = decoder.decode(kTrack).event();
  TimeMs now = kT0 + 20 * kMsPerDay;
  std::size_t i = 0;
  for (auto _ : state) {
    e.timestamp = now += 1000;
    auto out = apply_event(model(), a.state, a.users[i++ % a.users.size()], false, e, now);
    benchmark::DoNotOptimize(out);
  }
}
BENCHMARK(BM_ApplyUsageEvent)->Arg(10)->Arg(100)->Arg(1000)->Arg(10000);

void BM_Evaluate(benchmark::State& state) {
  Account a = make_account(static_cast<int>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(evaluate(model(), a.state, kT0 + 21 * kMsPerDay));
}
BENCHMARK(BM_Evaluate)->Arg(10)->Arg(10000);

void BM_DecayedSumAdd(benchmark::State& state) {
  DecayedSum s;
  TimeMs t = kT0;
  for (auto _ : state) {
    s.add(1.0, t += 1000, 7.0 * kMsPerDay);
    benchmark::DoNotOptimize(s);
  }
}
BENCHMARK(BM_DecayedSumAdd);

/// One account record as stored (20 activity days, 7 departments, traits), encoded.
void BM_EncodeAccount(benchmark::State& state) {
  pqa::scorer::StoredAccount stored{make_account(10000).state, kT0};
  stored.state.traits = {{"employees", 250.0}, {"industry", std::string("software")}};
  for (auto _ : state) benchmark::DoNotOptimize(pqa::scorer::encode(stored));
  state.counters["bytes"] = static_cast<double>(pqa::scorer::encode(stored).size());
}
BENCHMARK(BM_EncodeAccount);

void BM_EncodeUser(benchmark::State& state) {
  const Account a = make_account(10);
  for (auto _ : state) benchmark::DoNotOptimize(pqa::scorer::encode(a.users[3]));
}
BENCHMARK(BM_EncodeUser);

}  // namespace

BENCHMARK_MAIN();
