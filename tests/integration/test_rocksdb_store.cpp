// The RocksDB store on disk: large sorted batches are written as table files and ingested;
// whichever path a batch takes, the store must read back exactly what an in-memory map holds.
#include <catch2/catch.hpp>
#include <filesystem>
#include <map>
#include <random>

#include "state_store.h"
#include "temp_dir.h"

using namespace pqa;
using scorer::WriteSet;

namespace {

std::map<std::string, std::string> contents(scorer::StateStore& store) {
  std::map<std::string, std::string> out;
  store.scan("", [&](std::string_view k, std::string_view v) { out.emplace(k, v); });
  return out;
}

std::size_t table_files(const std::string& dir) {
  std::size_t n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir))
    n += entry.path().extension() == ".sst";
  return n;
}

std::string key_of(int i) {
  return "k" + std::to_string(i);
}

/// A batch over keys 0..399: puts of about half of them, deletes of about a fifth, some keys in
/// both (the delete wins); sorted and unique when `sorted`, else shuffled.
WriteSet random_batch(std::mt19937& rng, int round, bool sorted) {
  WriteSet w;
  std::bernoulli_distribution put(0.5), del(0.2);
  for (int i = 0; i < 400; ++i) {
    if (put(rng)) w.puts.emplace_back(key_of(i), "v" + std::to_string(round) + "." + key_of(i));
    if (del(rng)) w.deletes.push_back(key_of(i));
  }
  const auto by_key = [](const auto& a, const auto& b) { return a.first < b.first; };
  std::sort(w.puts.begin(), w.puts.end(), by_key);
  std::sort(w.deletes.begin(), w.deletes.end());
  if (!sorted) std::shuffle(w.puts.begin(), w.puts.end(), rng);
  return w;
}

/// A store in `dir` that ingests batches of at least `ingest_min_records` (0: never).
scorer::RocksDbOptions options_in(const scorer::TempDir& dir, std::size_t ingest_min_records) {
  scorer::RocksDbOptions options;
  options.path = dir.path();
  options.ingest_min_records = ingest_min_records;
  return options;
}

void apply(std::map<std::string, std::string>& model, const WriteSet& w) {
  for (const auto& [k, v] : w.puts) model[k] = v;
  for (const auto& k : w.deletes) model.erase(k);
}

}  // namespace

TEST_CASE("a large sorted batch is ingested as a table file, a small one is not",
          "[store][rocksdb]") {
  scorer::TempDir dir("pqa-rocksdb-test");
  const scorer::RocksDbOptions options = options_in(dir, 100);
  auto store = scorer::open_rocksdb_store(options);
  WriteSet small;
  for (int i = 0; i < 99; ++i) small.puts.emplace_back(key_of(1000 + i), "s");
  std::sort(small.puts.begin(), small.puts.end());
  store->commit(small);
  CHECK(table_files(dir.path()) == 0);  // in the memtable and the WAL

  WriteSet large = small;
  for (auto& [k, v] : large.puts) v = "l";
  large.puts.emplace_back("m", "l");
  store->commit(large);
  CHECK(table_files(dir.path()) >= 1);
  CHECK(store->get(key_of(1000)) == "l");  // newer than the memtable's value
  CHECK(store->get("m") == "l");
  CHECK_FALSE(std::filesystem::exists(std::filesystem::path(dir.path()) / "ingest" / "1.sst"));

  WriteSet unsorted = large;
  std::swap(unsorted.puts.front(), unsorted.puts.back());
  const auto before = table_files(dir.path());
  store->commit(unsorted);
  CHECK(table_files(dir.path()) == before);  // not sorted: through the memtable
}

TEST_CASE("ingested and batched writes read back alike, before and after reopening",
          "[store][rocksdb]") {
  scorer::TempDir dir("pqa-rocksdb-test");
  scorer::RocksDbOptions options =
      options_in(dir, GENERATE(0, 50));  // 0: every batch through the memtable
  options.memtable_insert_hints = GENERATE(true, false);
  // Off, one 64-byte block (every answer "maybe" soon), and the default size.
  options.new_key_filter_bytes = GENERATE(0, 64, 16u << 20);
  std::map<std::string, std::string> model;
  std::mt19937 rng(7);
  // Reads of keys that were put, deleted, never written (k0..k519: batches use k0..k399).
  const auto check_reads = [&model](scorer::StateStore& store) {
    for (int i = 0; i < 520; i += 13) {
      const auto it = model.find(key_of(i));
      REQUIRE(store.get(key_of(i)) ==
              (it == model.end() ? std::nullopt : std::optional<std::string>(it->second)));
    }
  };
  {
    auto store = scorer::open_rocksdb_store(options);
    for (int round = 0; round < 30; ++round) {
      const WriteSet w = random_batch(rng, round, round % 3 != 2);
      store->commit(w);
      apply(model, w);
      REQUIRE(contents(*store) == model);
      check_reads(*store);
    }
    CHECK((options.ingest_min_records == 0) == (table_files(dir.path()) == 0));
  }
  auto reopened = scorer::open_rocksdb_store(options);
  CHECK(contents(*reopened) == model);
  check_reads(*reopened);
}

TEST_CASE("a store opened empty answers reads of keys never written from its new-key filter",
          "[store][rocksdb]") {
  scorer::TempDir dir("pqa-rocksdb-test");
  const scorer::RocksDbOptions options = options_in(dir, 100);
  {
    auto store = scorer::open_rocksdb_store(options);
    WriteSet small, large;
    small.puts.emplace_back("a1", "memtable");
    for (int i = 0; i < 150; ++i) large.puts.emplace_back(key_of(1000 + i), "ingested");
    large.deletes.push_back(key_of(1000));
    store->commit(small);
    store->commit(large);  // sorted and unique: ingested as a table file
    REQUIRE(table_files(dir.path()) >= 1);
    CHECK(store->get("a1") == "memtable");
    CHECK(store->get(key_of(1001)) == "ingested");
    CHECK(store->get(key_of(1000)) == std::nullopt);  // put, then deleted: RocksDB says so
    CHECK(store->stats().reads_filtered == 0);
    for (int i = 0; i < 100; ++i) CHECK(store->get("new-" + std::to_string(i)) == std::nullopt);
    const auto stats = store->stats();
    CHECK(stats.reads == 103);
    CHECK(stats.reads_filtered >= 99);  // ~0.1 % of absent keys pass the filter by chance
  }
  // Reopened with state in it: keys written before this process are not in any filter, so
  // every read goes to RocksDB.
  auto reopened = scorer::open_rocksdb_store(options);
  CHECK(reopened->get("new-1") == std::nullopt);
  CHECK(reopened->get("a1") == "memtable");
  CHECK(reopened->get(key_of(1149)) == "ingested");
  CHECK(reopened->stats().reads == 3);
  CHECK(reopened->stats().reads_filtered == 0);
}
