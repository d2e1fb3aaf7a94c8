// Restore coalesces each batch of changelog records into one sorted write: committing it must
// leave a store exactly as applying the records one by one, in offset order, would.
#include <algorithm>
#include <catch2/catch.hpp>
#include <map>
#include <random>

#include "changelog.h"
#include "state_store.h"

using namespace pqa::scorer;

namespace {

std::map<std::string, std::string> contents(StateStore& store) {
  std::map<std::string, std::string> out;
  store.scan("", [&](std::string_view k, std::string_view v) { out.emplace(k, v); });
  return out;
}

/// Records over a few keys of each record type, so that keys repeat often, with tombstones.
std::vector<ChangelogRecord> random_records(std::mt19937& rng, int count) {
  std::vector<ChangelogRecord> records;
  std::uniform_int_distribution<int> key(0, 29), type(0, 2);
  std::bernoulli_distribution tombstone(0.2);
  for (int i = 0; i < count; ++i) {
    std::string k = std::string(1, "AUI"[type(rng)]) + std::to_string(key(rng));
    if (tombstone(rng))
      records.push_back({std::move(k), std::nullopt});
    else
      records.push_back({std::move(k), "v" + std::to_string(i)});
  }
  return records;
}

}  // namespace

TEST_CASE("a coalesced changelog batch leaves the store as the records applied in order",
          "[restore]") {
  std::mt19937 rng(11);
  auto in_order = make_memory_store();
  auto coalesced = make_memory_store();
  for (int batch = 0; batch < 50; ++batch) {
    const auto records = random_records(rng, 1 + batch * 7);
    for (const auto& r : records) {
      WriteSet one;
      if (r.value)
        one.puts.emplace_back(r.key, *r.value);
      else
        one.deletes.push_back(r.key);
      in_order->commit(one);
    }
    const WriteSet w = coalesce_changelog(records);
    // Each key once, puts and deletes sorted: what the store writes fastest.
    CHECK(std::is_sorted(w.puts.begin(), w.puts.end()));
    CHECK(std::adjacent_find(w.puts.begin(), w.puts.end(), [](const auto& x, const auto& y) {
            return x.first == y.first;
          }) == w.puts.end());
    CHECK(std::is_sorted(w.deletes.begin(), w.deletes.end()));
    CHECK(std::adjacent_find(w.deletes.begin(), w.deletes.end()) == w.deletes.end());
    for (const auto& [k, v] : w.puts)
      CHECK_FALSE(std::binary_search(w.deletes.begin(), w.deletes.end(), k));
    coalesced->commit(w);
    REQUIRE(contents(*coalesced) == contents(*in_order));
  }
}

TEST_CASE("a key's last changelog record wins, a tombstone too", "[restore]") {
  const WriteSet w = coalesce_changelog({{"Ub", "1"},
                                         {"Aa", "1"},
                                         {"Ub", std::nullopt},
                                         {"Aa", "2"},
                                         {"Ic", std::nullopt},
                                         {"Ic", "3"}});
  CHECK(w.puts == std::vector<std::pair<std::string, std::string>>{{"Aa", "2"}, {"Ic", "3"}});
  CHECK(w.deletes == std::vector<std::string>{"Ub"});
  CHECK(coalesce_changelog({}).empty());
}
