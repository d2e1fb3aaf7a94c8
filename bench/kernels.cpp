// Google Benchmark kernels of the scoring core (no I/O): decoding one event, applying one
// event to an account, evaluating an account, and how applying scales with account size; and
// encoding the state records that replay and the service write to RocksDB.
#include <benchmark/benchmark.h>
#include <stdlib.h>  // mkdtemp

#include <algorithm>
#include <filesystem>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "pqa/rollup/config.h"
#include "pqa/rollup/event.h"
#include "pqa/rollup/scoring.h"
#include "state_codec.h"
#include "state_store.h"

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

// The same instant in the form that takes parse_timestamp's fast path and in one that takes
// the general parser: what the fast path saves per event.
void BM_ParseTimestamp(benchmark::State& state) {
  const std::string text =
      state.range(0) == 0 ? "2026-03-02T10:11:12.345Z" : "2026-03-02T10:11:12.345+00:00";
  state.SetLabel(state.range(0) == 0 ? "common form (fast path)" : "offset form (general)");
  for (auto _ : state) benchmark::DoNotOptimize(parse_timestamp(text));
}
BENCHMARK(BM_ParseTimestamp)->Arg(0)->Arg(1);

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
  pqa::scorer::StoredAccount stored{make_account(10000).state, kT0, "pqa-1.00000000"};
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

/// A state store in a directory of its own under the system's temp directory, removed after.
class TempStore {
 public:
  explicit TempStore(bool insert_hints) {
    std::string name = (std::filesystem::temp_directory_path() / "pqa-kernel-XXXXXX").string();
    if (::mkdtemp(name.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = name;
    pqa::scorer::RocksDbOptions o;
    o.path = dir_.string();
    o.memtable_insert_hints = insert_hints;
    o.new_key_filter_bytes = 0;  // the write kernels measure RocksDB's writes, as before it
    store_ = pqa::scorer::open_rocksdb_store(o);
  }
  ~TempStore() {
    store_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  pqa::scorer::StateStore& operator*() { return *store_; }

 private:
  std::filesystem::path dir_;
  std::unique_ptr<pqa::scorer::StateStore> store_;
};

/// Sorted, unique write sets as a commit hands them over: one account record (600 bytes) per
/// three user records (80 bytes), drawn from 100,000 accounts with 1,000 users each.
std::vector<pqa::scorer::WriteSet> commit_batches(std::size_t records, std::size_t count) {
  std::mt19937_64 rng(42);
  std::vector<pqa::scorer::WriteSet> batches(count);
  for (auto& batch : batches) {
    while (batch.puts.size() < records) {
      const std::string account = "acc-" + std::to_string(rng() % 100'000);
      batch.puts.emplace_back(pqa::scorer::keys::account(account), std::string(600, 'a'));
      for (int u = 0; u < 3; ++u)
        batch.puts.emplace_back(
            pqa::scorer::keys::user(account, "u-" + std::to_string(rng() % 1'000)),
            std::string(80, 'u'));
    }
    std::sort(batch.puts.begin(), batch.puts.end());
    batch.puts.erase(std::unique(batch.puts.begin(), batch.puts.end(),
                                 [](const auto& x, const auto& y) { return x.first == y.first; }),
                     batch.puts.end());
  }
  return batches;
}

/// Committing a sorted batch through the memtable (the service's per-transaction writes, and
/// replay's below state.rocksdb.ingest_min_records), with and without insert hints.
/// Args: hints (0/1), records per batch.
void BM_StoreCommitSorted(benchmark::State& state) {
  TempStore store(state.range(0) != 0);
  const auto batches = commit_batches(static_cast<std::size_t>(state.range(1)), 64);
  std::size_t next = 0, records = 0;
  for (auto _ : state) {
    const auto& batch = batches[next++ % batches.size()];
    (*store).commit(batch);
    records += batch.puts.size();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(records));
}
BENCHMARK(BM_StoreCommitSorted)
    ->ArgNames({"hints", "records"})
    ->Args({0, 1000})
    ->Args({1, 1000})
    ->Args({0, 10000})
    ->Args({1, 10000})
    ->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
