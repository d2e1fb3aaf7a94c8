// Stable, platform-independent hashing for deterministic ids (not for security).
#pragma once

#include <cstdint>
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

inline void append_hex(std::string& out, std::uint64_t v, int digits = 16) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (int i = digits - 1; i >= 0; --i) out.push_back(kHex[(v >> (4 * i)) & 0xF]);
}

}  // namespace pqa::rollup::detail
