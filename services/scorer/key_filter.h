// A fixed-size Bloom filter of state keys, and the key hash the state caches share.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "pqa/rollup/hash.h"

namespace pqa::scorer {

/// The key hash the state caches and this filter share (rollup::detail::hash_words).
inline std::uint64_t hash_state_key(std::string_view key) {
  return rollup::detail::hash_words(key);
}

/// Answers "was this key ever added?" with no false negatives and a few false positives.
/// Blocked: all of a key's bits lie in one 64-byte block, so a probe is one cache miss (a
/// classic Bloom filter's k probes are k misses once the filter outgrows the CPU caches).
/// The size is fixed: past its design load the false-positive rate rises (at 16 bits per key
/// it is ~0.1 %, at 8 bits ~3 %, at 4 bits ~22 %) and answers stay right.
///
/// Threads: add() calls must not overlap each other (one writer: the thread that commits to
/// the store); may_contain() may run on other threads meanwhile. A key is reliably seen once
/// its add() happens-before the probe (the store's commit completing does that).
class KeyFilter {
 public:
  /// `bytes` is rounded down to whole 64-byte blocks, at least one.
  explicit KeyFilter(std::size_t bytes)
      : blocks_(bytes < sizeof(Block) ? 1 : bytes / sizeof(Block)) {}

  void add(std::string_view key) {
    const Probe p = probe(key);
    Block& block = blocks_[p.block];
    for (std::size_t i = 0; i < kWordsPerBlock; ++i) {
      if (p.masks[i] == 0) continue;
      // One writer: a plain read-modify-write of an atomic word (no locked instruction);
      // the atomic type only keeps concurrent readers well-defined.
      auto& word = block.words[i];
      word.store(word.load(std::memory_order_relaxed) | p.masks[i], std::memory_order_relaxed);
    }
  }

  bool may_contain(std::string_view key) const {
    const Probe p = probe(key);
    const Block& block = blocks_[p.block];
    for (std::size_t i = 0; i < kWordsPerBlock; ++i)
      if ((block.words[i].load(std::memory_order_relaxed) & p.masks[i]) != p.masks[i]) return false;
    return true;
  }

  std::size_t bytes() const { return blocks_.size() * sizeof(Block); }

 private:
  static constexpr std::size_t kWordsPerBlock = 8;
  /// A cache line: aligned, so that a probe touches exactly one (operator new honours the
  /// alignment of over-aligned types; malloc's 16 bytes would split most blocks across two).
  struct alignas(64) Block {
    std::atomic<std::uint64_t> words[kWordsPerBlock];
  };
  /// Six bits per key: the optimum for ~9 bits per key, and near it from 6 to 16.
  static constexpr int kBitsPerKey = 6;

  struct Probe {
    std::size_t block = 0;
    std::uint64_t masks[kWordsPerBlock] = {};
  };

  Probe probe(std::string_view key) const {
    const std::uint64_t h = hash_state_key(key);
    Probe p;
    // The high half picks the block (multiply-shift, no modulo); a remix gives the bits,
    // 9 bits (a position among 512) each.
    p.block = static_cast<std::size_t>(((h >> 32) * blocks_.size()) >> 32);
    std::uint64_t bits = rollup::detail::mix64(h ^ 0x2545F4914F6CDD1DULL);
    for (int i = 0; i < kBitsPerKey; ++i, bits >>= 9) {
      const unsigned position = static_cast<unsigned>(bits & 511);
      p.masks[position >> 6] |= std::uint64_t{1} << (position & 63);
    }
    return p;
  }

  std::vector<Block> blocks_;  ///< value-initialised: all bits clear
};

}  // namespace pqa::scorer
