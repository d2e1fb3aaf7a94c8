// The Bloom filter of state keys (key_filter.h): never a false "absent", and about the
// false-positive rate its size promises.
#include <algorithm>
#include <catch2/catch.hpp>
#include <string>

#include "key_filter.h"

using pqa::scorer::KeyFilter;

namespace {

/// Keys shaped like the processor's (record type, account, user).
std::string user_key(int account, int user) {
  return "u" + std::to_string(account) + "/user-" + std::to_string(user) + "@example.com";
}

double false_positive_rate(const KeyFilter& filter, int probes) {
  int positives = 0;
  for (int i = 0; i < probes; ++i) positives += filter.may_contain(user_key(-1 - i, i));
  return static_cast<double>(positives) / probes;
}

}  // namespace

TEST_CASE("a key filter never calls a key it was given absent", "[key_filter]") {
  const std::size_t bytes = GENERATE(1, 64, 4096, 1u << 20);
  KeyFilter filter(bytes);
  CHECK(filter.bytes() == std::max<std::size_t>(64, bytes / 64 * 64));
  for (int i = 0; i < 20'000; ++i) filter.add(user_key(i % 700, i));
  for (int i = 0; i < 20'000; ++i) REQUIRE(filter.may_contain(user_key(i % 700, i)));
  KeyFilter empty(bytes);
  CHECK_FALSE(empty.may_contain(""));  // the empty key is a key like any other
  empty.add("");
  CHECK(empty.may_contain(""));
}

TEST_CASE("a key filter's false positives match its bits per key", "[key_filter]") {
  constexpr int kKeys = 100'000;
  // 16 bits per key (2 bytes): ~0.1 % expected; 4 bits: ~22 % (six bits set per key).
  KeyFilter roomy(2 * kKeys), crowded(kKeys / 2);
  for (int i = 0; i < kKeys; ++i) {
    roomy.add(user_key(i, i));
    crowded.add(user_key(i, i));
  }
  const double roomy_rate = false_positive_rate(roomy, 200'000);
  const double crowded_rate = false_positive_rate(crowded, 200'000);
  INFO("false positives at 16 bits per key " << roomy_rate << ", at 4 bits " << crowded_rate);
  CHECK(roomy_rate < 0.003);
  CHECK(crowded_rate > 0.1);
  CHECK(crowded_rate < 0.35);
  KeyFilter empty(2 * kKeys);
  CHECK(false_positive_rate(empty, 10'000) == 0.0);
}
