// The write-back cache against a plain map: whatever the capacity, the mix of reads, updates,
// get-or-adds, evictions and flushes, a read sees the latest value and the store ends up with
// every change.
#include <algorithm>
#include <array>
#include <catch2/catch.hpp>
#include <map>
#include <random>
#include <string>

#include "write_back_cache.h"

using pqa::scorer::CacheAccess;
using pqa::scorer::StateStore;
using pqa::scorer::WriteBackCache;
using pqa::scorer::WriteSet;

namespace {

struct NumberCodec {
  static std::string encode(const std::uint64_t& v) { return std::to_string(v); }
  static std::optional<std::uint64_t> decode(std::string_view b) {
    return std::stoull(std::string(b));
  }
};
using NumberCache = WriteBackCache<std::uint64_t, NumberCodec>;

void flush(NumberCache& cache, StateStore& store) {
  WriteSet writes;
  cache.collect_writes(writes);
  // In strict key order: each key at most once a batch, sorted for the store.
  for (std::size_t i = 1; i < writes.puts.size(); ++i)
    REQUIRE(writes.puts[i - 1].first < writes.puts[i].first);
  store.commit(writes);
}

std::map<std::string, std::string> contents(StateStore& store) {
  std::map<std::string, std::string> out;
  store.scan("", [&](std::string_view k, std::string_view v) { out.emplace(k, v); });
  return out;
}

/// Key number `n`, in lengths on both sides of the 40 bytes an entry holds inline, so entries
/// are reused for keys longer and shorter than the one they held before.
std::string key_of(unsigned n) {
  static constexpr std::array<std::size_t, 5> kLengths = {0, 39, 40, 41, 90};
  std::string key = "k" + std::to_string(n);
  key.resize(std::max(key.size(), kLengths[n % kLengths.size()]), '.');
  return key;
}

/// Random reads, updates, inserts and flushes on a cache of `capacity` over `key_count` keys,
/// checked step by step against `expected`, the value every key should have.
void run_against_map(std::size_t capacity, int key_count, std::uint64_t seed) {
  auto store = pqa::scorer::make_memory_store();
  NumberCache cache(*store, capacity);
  std::map<std::string, std::uint64_t> expected;
  std::mt19937_64 rng(seed);
  for (int step = 0; step < 20'000; ++step) {
    const std::string key = key_of(static_cast<unsigned>(rng() % static_cast<unsigned>(key_count)));
    const auto want = expected.find(key);
    switch (rng() % 9) {
      case 0:
      case 1:
      case 2: {  // read
        const std::uint64_t* got = cache.get(key);
        REQUIRE((got != nullptr) == (want != expected.end()));
        if (got != nullptr) REQUIRE(*got == want->second);
        break;
      }
      case 5: {  // insert without looking first: replaces the record wherever it is
        const std::uint64_t value = rng();
        cache.insert(key, value);
        expected[key] = value;
        break;
      }
      case 3:
      case 4: {  // update in place, or insert when missing
        const std::uint64_t value = rng();
        if (std::uint64_t* got = cache.get(key, CacheAccess::kUpdate))
          *got = value;
        else
          cache.insert(key, value);
        expected[key] = value;
        break;
      }
      case 6: {  // read, then change and mark: the processor's path for identities
        if (std::uint64_t* got = cache.get(key)) {
          *got += 1;
          cache.mark_dirty(key);
          ++expected[key];
        }
        break;
      }
      case 7: {  // one lookup that adds a default record when there is none: the scoring path
        auto found = cache.get_or_add(key);
        REQUIRE(found.added == (want == expected.end()));
        REQUIRE(found.value == (found.added ? 0 : want->second));
        found.value = rng();
        expected[key] = found.value;
        break;
      }
      default:
        if (rng() % 50 == 0) flush(cache, *store);
    }
    REQUIRE(cache.size() <= capacity);
  }
  flush(cache, *store);
  const auto stored = contents(*store);
  REQUIRE(stored.size() == expected.size());
  for (const auto& [key, value] : expected) REQUIRE(stored.at(key) == std::to_string(value));
  // And reads after the flush see the same values (from the cache or the store).
  for (const auto& [key, value] : expected) {
    const std::uint64_t* got = cache.get(key);
    REQUIRE(got != nullptr);
    REQUIRE(*got == value);
  }
}

}  // namespace

TEST_CASE("the write-back cache agrees with a plain map whatever its capacity", "[cache]") {
  // Capacity 1 evicts on every miss; 3 and 64 evict often (collisions in the index, keys
  // moving between entries, pending and the store); 1,000 holds every key.
  const std::size_t capacity = GENERATE(1u, 3u, 64u, 1000u);
  const int key_count = GENERATE(5, 200);
  CAPTURE(capacity, key_count);
  for (std::uint64_t seed = 1; seed <= 3; ++seed) run_against_map(capacity, key_count, seed);
}

TEST_CASE("an insert supersedes the key's evicted change still waiting to be written", "[cache]") {
  auto store = pqa::scorer::make_memory_store();
  NumberCache cache(*store, 1);
  cache.insert("a", 1);
  cache.insert("b", 5);  // evicts a's change into pending
  cache.insert("a", 2);  // a blind insert: no get() took it out of pending first
  WriteSet writes;
  cache.collect_writes(writes);
  REQUIRE(writes.puts.size() == 2);
  CHECK(writes.puts[0] == std::pair<std::string, std::string>{"a", "2"});
  CHECK(writes.puts[1] == std::pair<std::string, std::string>{"b", "5"});
}

TEST_CASE("the write-back cache finds every cached key as its index grows and shrinks", "[cache]") {
  auto store = pqa::scorer::make_memory_store();
  const std::size_t capacity = 5'000;
  NumberCache cache(*store, capacity);
  // 40,000 distinct keys through a 5,000-entry cache: the index grows to its bound, then every
  // insert evicts (removes from the index), so probe runs are rebuilt constantly.
  for (std::uint64_t i = 0; i < 40'000; ++i) {
    cache.insert("key-" + std::to_string(i), i);
    if (i % 997 == 0) {
      // Every key inserted so far is readable, cached or not.
      for (std::uint64_t j = 0; j <= i; j += 13) {
        const std::uint64_t* got = cache.get("key-" + std::to_string(j));
        REQUIRE(got != nullptr);
        REQUIRE(*got == j);
      }
    }
  }
  REQUIRE(cache.size() == capacity);
  flush(cache, *store);
  REQUIRE(contents(*store).size() == 40'000);
}
