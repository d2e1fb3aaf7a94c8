// BackgroundWriteStore over a real RocksDB on disk: reads while a batch is being written,
// write order, failures, and the processor on top of it.
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>

#include "../unit/harness.h"
#include "background_write_store.h"
#include "json_output.h"
#include "temp_dir.h"

using namespace pqa;
using namespace pqa::test;
using scorer::WriteSet;

namespace {

/// RocksDB behind a gate: commit() blocks until the test opens it, so that the test decides
/// how long a batch is in flight; or fails, to inject an I/O error.
class GatedStore final : public scorer::StateStore {
 public:
  explicit GatedStore(const std::string& path) {
    scorer::RocksDbOptions options;
    options.path = path;
    rocksdb_ = scorer::open_rocksdb_store(options);
  }
  std::optional<std::string> get(std::string_view key) override { return rocksdb_->get(key); }
  void commit(const WriteSet& writes) override {
    std::unique_lock lock(mutex_);
    ++commits_started_;
    changed_.notify_all();
    changed_.wait(lock, [this] { return open_; });
    if (fail_) throw scorer::StoreError("injected write failure");
    rocksdb_->commit(writes);
  }
  void scan(std::string_view prefix,
            const std::function<void(std::string_view, std::string_view)>& fn) override {
    rocksdb_->scan(prefix, fn);
  }
  scorer::StoreStats stats() override { return rocksdb_->stats(); }

  void close_gate() { set(open_, false); }
  void open_gate() { set(open_, true); }
  void fail_writes() { set(fail_, true); }
  /// Blocks until `n` commits have reached the gate (so one is surely in flight).
  void await_commits(int n) {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return commits_started_ >= n; });
  }
  scorer::StateStore& rocksdb() { return *rocksdb_; }

 private:
  void set(bool& flag, bool value) {
    std::lock_guard lock(mutex_);
    flag = value;
    changed_.notify_all();
  }
  std::unique_ptr<scorer::StateStore> rocksdb_;
  std::mutex mutex_;
  std::condition_variable changed_;
  bool open_ = true;
  bool fail_ = false;
  int commits_started_ = 0;
};

struct GatedFixture {
  scorer::TempDir dir{"pqa-bgstore-test"};
  GatedStore* gated = nullptr;  // owned by `store`
  std::unique_ptr<scorer::BackgroundWriteStore> store;
  GatedFixture() {
    auto inner = std::make_unique<GatedStore>(dir.path());
    gated = inner.get();
    store = std::make_unique<scorer::BackgroundWriteStore>(std::move(inner));
  }
};

}  // namespace

TEST_CASE("reads see a batch while it is being written, before the store has it",
          "[store][background]") {
  GatedFixture f;
  f.store->commit({{{"k-old", "1"}, {"k-gone", "x"}, {"k-kept", "same"}}, {}});
  f.gated->close_gate();
  WriteSet batch;
  for (int i = 0; i < 1000; ++i)
    batch.puts.emplace_back("n" + std::to_string(i), "v" + std::to_string(i));
  batch.puts.emplace_back("k-old", "2");
  batch.deletes.push_back("k-gone");
  f.store->commit_in_background(std::move(batch));
  f.gated->await_commits(2);
  REQUIRE(f.store->writing());
  // The store underneath has none of it yet...
  CHECK(f.gated->rocksdb().get("k-old") == "1");
  CHECK_FALSE(f.gated->rocksdb().get("n7").has_value());
  // ...but reads through the decorator do.
  CHECK(f.store->get("k-old") == "2");
  CHECK_FALSE(f.store->get("k-gone").has_value());
  CHECK(f.store->get("k-kept") == "same");  // not in the batch: from the store
  for (int i = 0; i < 1000; ++i)
    REQUIRE(f.store->get("n" + std::to_string(i)) == "v" + std::to_string(i));
  CHECK_FALSE(f.store->get("n1000").has_value());
  CHECK_FALSE(f.store->get("").has_value());
  f.gated->open_gate();
  f.store->wait();
  CHECK_FALSE(f.store->writing());
  CHECK(f.gated->rocksdb().get("k-old") == "2");
  CHECK_FALSE(f.gated->rocksdb().get("k-gone").has_value());
  CHECK(f.gated->rocksdb().get("n999") == "v999");
}

TEST_CASE("writes land in the order they were made", "[store][background]") {
  GatedFixture f;
  f.gated->close_gate();
  f.store->commit_in_background({{{"k", "first"}}, {}});
  f.gated->await_commits(1);
  // A synchronous commit and a scan wait for the batch in flight, so neither overtakes it.
  std::thread opener([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    f.gated->open_gate();
  });
  f.store->commit({{{"k", "second"}}, {}});
  opener.join();
  CHECK(f.gated->rocksdb().get("k") == "second");
  std::vector<std::string> seen;
  f.store->commit_in_background({{{"k", "third"}, {"l", "x"}}, {}});
  f.store->scan("k", [&](std::string_view, std::string_view v) { seen.emplace_back(v); });
  CHECK(seen == std::vector<std::string>{"third"});
}

TEST_CASE("unsorted puts with a repeated key: the last put wins, as in the store",
          "[store][background]") {
  GatedFixture f;
  f.gated->close_gate();
  f.store->commit_in_background({{{"z", "1"}, {"a", "first"}, {"m", "2"}, {"a", "last"}}, {}});
  f.gated->await_commits(1);
  CHECK(f.store->get("a") == "last");
  CHECK(f.store->get("z") == "1");
  f.gated->open_gate();
  f.store->wait();
  CHECK(f.gated->rocksdb().get("a") == "last");
}

TEST_CASE("a failed background write is raised by the next call that waits, once",
          "[store][background][errors]") {
  GatedFixture f;
  f.gated->fail_writes();
  f.store->commit_in_background({{{"k", "v"}}, {}});
  CHECK_THROWS_WITH(f.store->wait(), Catch::Contains("injected write failure"));
  CHECK_FALSE(f.store->writing());
  CHECK_NOTHROW(f.store->wait());  // reported once, not on every later call
  // The next batch also fails; commit() raises it before writing anything of its own.
  f.store->commit_in_background({{{"k", "v"}}, {}});
  CHECK_THROWS_AS(f.store->commit({{{"other", "v"}}, {}}), scorer::StoreError);
  CHECK_FALSE(f.gated->rocksdb().get("other").has_value());
}

TEST_CASE("a processor writing in the background matches one writing synchronously",
          "[store][background][processor]") {
  // Tiny caches and a flush every few events: records are evicted and read back while the
  // batch holding them may still be in flight.
  std::vector<std::string> lines;
  std::mt19937_64 rng(5);
  for (int a = 0; a < 30; ++a)
    for (int u = 0; u < 4; ++u) {
      const std::string user = "a" + std::to_string(a) + "u" + std::to_string(u);
      lines.push_back(group(user, "acct-" + std::to_string(a), kT0, R"({"employees":120})"));
      lines.push_back(identify(user, kT0, R"({"department":"d)" + std::to_string(u) + "\"}"));
    }
  const char* names[] = {"Report Created", "Dashboard Viewed", "Seat Added", "Comment Added"};
  for (int i = 0; i < 3000; ++i) {
    const int a = static_cast<int>(rng() % 30);
    lines.push_back(track("a" + std::to_string(a) + "u" + std::to_string(rng() % 4),
                          names[rng() % 4], kT0 + i * 10 * 60'000));
  }
  scorer::ProcessorOptions options;
  options.account_cache_entries = 3;
  options.user_cache_entries = 5;
  options.identity_cache_entries = 5;
  options.flush_every_events = 13;
  const rollup::Model model(shipped_model_config());
  const auto run = [&](scorer::StateStore& store) {
    CollectingSink sink;
    scorer::Processor processor(model, store, sink, options);
    for (const auto& line : lines) REQUIRE_FALSE(processor.process(line));
    processor.advance_to(kT0 + 90 * kDay);
    std::vector<std::string> out;
    for (const auto& s : sink.signals) out.push_back(scorer::to_json(s, "v"));
    processor.for_each_account([&](const rollup::AccountId& id, const rollup::AccountState& st) {
      out.push_back(scorer::score_to_json(id, rollup::evaluate(model, st, kT0 + 90 * kDay),
                                          kT0 + 90 * kDay, "v"));
    });
    return std::pair{out, processor.stats().flushes};
  };
  auto memory = scorer::make_memory_store();
  const auto [expected, sync_flushes] = run(*memory);
  scorer::TempDir dir("pqa-bgstore-test");
  scorer::RocksDbOptions db;
  db.path = dir.path();
  scorer::BackgroundWriteStore background(scorer::open_rocksdb_store(db));
  const auto [actual, background_flushes] = run(background);
  CHECK(background_flushes == sync_flushes);
  REQUIRE(background_flushes > 200);
  CHECK(actual == expected);
}
