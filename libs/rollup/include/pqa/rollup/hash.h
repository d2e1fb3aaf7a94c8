// Stable, platform-independent hashing for deterministic ids (not for security).
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace pqa::rollup::detail {

/// 64-bit FNV-1a with a seed folded into the offset basis.
constexpr std::uint64_t fnv1a64(std::string_view data, std::uint64_t seed = 0) {
  std::uint64_t h = 0xcbf29ce484222325ULL ^ seed;
  for (unsigned char c : data) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

/// Final avalanche (splitmix64) so that close inputs give unrelated outputs.
constexpr std::uint64_t mix64(std::uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

/// A fast hash of a short string (state keys, event names): eight bytes at a time, each word
/// multiplied in, then splitmix64's finaliser. Inlined into lookups, where std::hash
/// (MurmurHash2 in libstdc++, an out-of-line call) drew 3.5 % of the score stage's samples
/// (bench/RESULTS.md §1). Not seeded, and not for ids (fnv1a64 is the stable one).
inline std::uint64_t hash_words(std::string_view key) {
  constexpr std::uint64_t kMultiplier = 0xbf58476d1ce4e5b9ULL;
  // The length is mixed in before any byte, so no first word can cancel it out.
  std::uint64_t h = (0x9E3779B97F4A7C15ULL ^ key.size()) * kMultiplier;
  std::size_t i = 0;
  for (; i + 8 <= key.size(); i += 8) {
    std::uint64_t word;
    std::memcpy(&word, key.data() + i, 8);
    h = (h ^ word) * kMultiplier;
    h ^= h >> 31;
  }
  if (i < key.size()) {
    std::uint64_t tail = 0;  // zero-filled: the length tells "ab" from "ab\0"
    std::memcpy(&tail, key.data() + i, key.size() - i);
    h = (h ^ tail) * kMultiplier;
  }
  return mix64(h);
}

inline void append_hex(std::string& out, std::uint64_t v, int digits = 16) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (int i = digits - 1; i >= 0; --i) out.push_back(kHex[(v >> (4 * i)) & 0xF]);
}

}  // namespace pqa::rollup::detail
