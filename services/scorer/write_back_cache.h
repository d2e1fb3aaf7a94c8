// A bounded write-back cache of decoded state records in front of the StateStore.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "key_filter.h"
#include "pqa/rollup/event.h"
#include "state_store.h"

namespace pqa::scorer {

/// How a caller is going to use a record it fetches.
enum class CacheAccess { kRead, kUpdate };

/// Keeps up to `capacity` hot records decoded in memory, so the hot path does neither a Get nor
/// a Put per event. Changed records are written back in one batch by collect_writes() (the
/// processor's flush); a changed record evicted before that is kept encoded in `pending_` so
/// later reads still see it.
///
/// Eviction is CLOCK (second chance), an LRU approximation that costs one flag write per hit
/// instead of a list splice. Value references returned by get()/insert() stay valid until a
/// later get()/insert() on the same cache evicts them, which may be the very next one (when
/// every entry is marked referenced the hand clears them all and may come back to it): hold
/// one reference per cache across a lookup of another key (a hit evicts nothing). Not
/// thread-safe: owned by one processor.
///
/// Lookups go through an open-addressing index (linear probing, each slot the key's full hash
/// and its entry) rather than std::unordered_map: with hundreds of thousands of accounts every
/// step of a lookup is a likely cache miss, and a node-based map takes three or four (bucket,
/// the node before, the node, the key) where this takes two (the slot, the entry).
template <typename Value, typename Codec>
class WriteBackCache {
 private:
  static constexpr std::size_t kClean = static_cast<std::size_t>(-1);
  struct NoVisit {  ///< collect_writes without a visitor
    void operator()(std::string_view, const Value&) const {}
  };

  /// A key kept inside its entry when it is short, as state keys are (a keyspace byte and one
  /// or two ids of tens of bytes): confirming a lookup's hit then reads the entry it is about
  /// to use anyway, not a separate heap block, one dependent cache miss fewer per lookup once
  /// the state outgrows the CPU caches. Longer keys (ids may be up to 256 bytes) spill.
  class EntryKey {
   public:
    void assign(std::string_view key) {
      size_ = static_cast<std::uint32_t>(key.size());
      char* to = inline_.data();
      if (key.size() > kInline) {
        if (key.size() > spill_capacity_) {
          spill_ = std::make_unique<char[]>(key.size());
          spill_capacity_ = size_;
        }
        to = spill_.get();
      }
      std::copy(key.begin(), key.end(), to);
    }
    std::string_view view() const {
      return {size_ <= kInline ? inline_.data() : spill_.get(), size_};
    }
    std::string str() const { return std::string(view()); }

   private:
    // 56 bytes with the pointer; 64 with the entry's hash before it, a cache line's worth
    // (entries are not aligned to cache lines, so it may straddle two).
    static constexpr std::size_t kInline = 40;
    std::uint32_t size_ = 0;
    std::uint32_t spill_capacity_ = 0;
    std::array<char, kInline> inline_{};
    std::unique_ptr<char[]> spill_;  ///< keys longer than kInline; kept for reuse
  };

  struct Entry {
    std::uint64_t hash = 0;  ///< hash_state_key(key), kept for eviction
    EntryKey key;            ///< next to the hash: a probe's comparison reads the entry's start
    Value value;
    std::size_t dirty_index = kClean;  ///< position in dirty_, kClean when unchanged
    bool referenced = true;
  };

 public:
  WriteBackCache(StateStore& store, std::size_t capacity)
      : store_(store), capacity_(capacity < 1 ? 1 : capacity) {}

  /// The record under `key`, loaded from the store on a miss; nullptr if there is none.
  /// With CacheAccess::kUpdate the record is marked changed (the caller is about to modify it),
  /// which saves a second lookup. Throws StoreError on an undecodable record.
  Value* get(const std::string& key, CacheAccess access = CacheAccess::kRead) {
    return lookup(key, hash_state_key(key), access);
  }

  /// A key with its hash, whose index slot has been asked into the CPU cache (prefetch()).
  struct Prefetched {
    const std::string& key;
    std::uint64_t hash;
  };
  /// Starts loading the index slot of `key` and returns what get_or_add() needs, so that the
  /// caller can do other work (another lookup) while the slot's cache miss is under way. `key`
  /// must outlive the result.
  Prefetched prefetch(const std::string& key) const {
    const std::uint64_t hash = hash_state_key(key);
    index_.prefetch(hash);
    return {key, hash};
  }

  struct Found {
    Value& value;
    bool added;  ///< there was no record: `value` is a new default one
  };
  /// The record under `key` marked changed, as get(key, kUpdate) returns it, or, if there is
  /// none, a default-constructed one added (also marked changed): one hash and one index
  /// probe where get() then insert() would take two of each (a miss still asks pending and
  /// the store).
  Found get_or_add(const std::string& key) {
    return get_or_add(Prefetched{key, hash_state_key(key)});
  }
  Found get_or_add(const Prefetched& key) {
    if (Value* value = lookup(key.key, key.hash, CacheAccess::kUpdate)) return {*value, false};
    return {add(key.key, key.hash, Value{}, true), true};
  }

  /// Adds a new record (marked changed); replaces the cached one if the key is cached.
  Value& insert(const std::string& key, Value value) {
    const std::uint64_t hash = hash_state_key(key);
    if (Entry* existing = index_.find(key, hash)) {
      existing->value = std::move(value);
      existing->referenced = true;
      set_dirty(*existing);
      return existing->value;
    }
    // An evicted change of the key still waiting to be written is superseded: a key is never
    // in pending and cached at once, so a flush writes it once, with this value.
    if (auto p = pending_.find(key); p != pending_.end()) {
      pending_bytes_ -= p->first.size() + p->second.size();
      pending_.erase(p);
    }
    return add(key, hash, std::move(value), true);
  }

  /// Marks the record under `key` (which must be cached) as changed.
  void mark_dirty(const std::string& key) {
    if (Entry* entry = index_.find(key, hash_state_key(key))) set_dirty(*entry);
  }

  /// Appends every change to `out.puts` in ascending key order (each key at most once) and
  /// marks the cache clean. The encoded records are sorted, not the entries before encoding:
  /// the fresh records lie together in memory, the entries all over it (measured on batches
  /// of 426,000-460,000 records: 0.46-0.67 s sorting the entries first, 0.29-0.48 s this way).
  void collect_writes(WriteSet& out) { collect_writes(out, NoVisit{}); }

  /// The same, and calls `visit(key, value)` (a string_view valid during the call) for every
  /// changed record as it is collected: what the caller derives from the changes (the service's
  /// score records) comes from the decoded values rather than from decoding the records again. A
  /// changed record already evicted is decoded for it (rare: eviction of a changed record happens
  /// under memory pressure only). If `visit` throws, the cache's changes are half collected: the
  /// owner must drop the cache and reload from the store (the service rewinds or stops on any error
  /// of a commit).
  template <typename Visit>
  void collect_writes(WriteSet& out, Visit&& visit) {
    // Without a visitor an evicted change is not decoded at all: replay's flushes hand over
    // hundreds of thousands of them.
    constexpr bool visiting = !std::is_same_v<std::decay_t<Visit>, NoVisit>;
    const auto first = static_cast<std::ptrdiff_t>(out.puts.size());
    for (auto& [k, v] : pending_) {
      if constexpr (visiting)
        if (auto decoded = Codec::decode(v)) visit(k, *decoded);
      out.puts.emplace_back(k, std::move(v));
    }
    pending_.clear();
    pending_bytes_ = 0;
    for (Entry* entry : dirty_) {
      visit(entry->key.view(), entry->value);
      out.puts.emplace_back(entry->key.str(), Codec::encode(entry->value));
      entry->dirty_index = kClean;
    }
    dirty_.clear();
    std::sort(out.puts.begin() + first, out.puts.end(),
              [](const auto& x, const auto& y) { return x.first < y.first; });
  }

  /// Records collect_writes() would hand over now.
  std::size_t changed() const { return dirty_.size() + pending_.size(); }

  /// Bytes of changed records evicted since the last collect_writes (memory awaiting a flush).
  std::size_t pending_bytes() const { return pending_bytes_; }
  /// Records held decoded.
  std::size_t size() const { return index_.size(); }

 private:
  /// Maps a key to its entry. Each slot holds the key's hash, so a probe compares keys only
  /// when the hashes match, and growing never touches an entry. At most half full; erasing
  /// shifts later slots of the run back (no tombstones, so probe runs never lengthen).
  class Index {
   public:
    Entry* find(std::string_view key, std::uint64_t hash) const {
      if (slots_.empty()) return nullptr;
      for (std::size_t i = home(hash);; i = (i + 1) & mask()) {
        const Slot& s = slots_[i];
        if (s.entry == nullptr) return nullptr;
        if (s.hash == hash && s.entry->key.view() == key) return s.entry;
      }
    }

    void prefetch(std::uint64_t hash) const {
      if (!slots_.empty()) __builtin_prefetch(&slots_[home(hash)]);
    }

    /// Adds a key that is not in the index.
    void add(Entry* entry, std::uint64_t hash) {
      if (2 * (size_ + 1) > slots_.size()) grow();
      place(Slot{hash, entry});
      ++size_;
    }

    /// Removes the key that `entry` holds, which must be in the index.
    void remove(const Entry& entry, std::uint64_t hash) {
      std::size_t hole = home(hash);
      while (slots_[hole].entry != &entry) hole = (hole + 1) & mask();
      // Backward shift: a later slot of the run moves into the hole unless its home lies
      // cyclically in (hole, slot], where it would become unreachable.
      for (std::size_t i = (hole + 1) & mask(); slots_[i].entry != nullptr; i = (i + 1) & mask()) {
        const std::size_t h = home(slots_[i].hash);
        const bool stays = hole < i ? (hole < h && h <= i) : (hole < h || h <= i);
        if (stays) continue;
        slots_[hole] = slots_[i];
        hole = i;
      }
      slots_[hole] = Slot{};
      --size_;
    }

    std::size_t size() const { return size_; }

   private:
    struct Slot {
      std::uint64_t hash = 0;
      Entry* entry = nullptr;  ///< nullptr: empty
    };

    std::size_t mask() const { return slots_.size() - 1; }
    /// Fibonacci hashing: the top bits of a multiplication, good whatever the hash's low bits.
    std::size_t home(std::uint64_t hash) const {
      return static_cast<std::size_t>((hash * 0x9E3779B97F4A7C15ULL) >> shift_);
    }
    void place(Slot slot) {
      std::size_t i = home(slot.hash);
      while (slots_[i].entry != nullptr) i = (i + 1) & mask();
      slots_[i] = slot;
    }
    void grow() {
      std::vector<Slot> old = std::move(slots_);
      const std::size_t n = old.empty() ? 16 : 2 * old.size();
      slots_.assign(n, Slot{});
      shift_ = 64 - std::countr_zero(n);
      for (const Slot& s : old)
        if (s.entry != nullptr) place(s);
    }

    std::vector<Slot> slots_;  ///< a power of two long
    int shift_ = 64;
    std::size_t size_ = 0;
  };

  Value* lookup(const std::string& key, std::uint64_t hash, CacheAccess access) {
    if (Entry* entry = index_.find(key, hash)) {
      entry->referenced = true;
      if (access == CacheAccess::kUpdate) set_dirty(*entry);
      return &entry->value;
    }
    if (auto p = pending_.find(key); p != pending_.end()) {
      // Back from pending: it becomes a changed entry again, and pending forgets it, so a key
      // is never written twice in one batch.
      auto value = decode_or_throw(p->second, key);
      pending_bytes_ -= p->first.size() + p->second.size();
      pending_.erase(p);
      return &add(key, hash, std::move(value), true);
    }
    auto bytes = store_.get(key);
    if (!bytes) return nullptr;
    return &add(key, hash, decode_or_throw(*bytes, key), access == CacheAccess::kUpdate);
  }

  void set_dirty(Entry& entry) {
    if (entry.dirty_index != kClean) return;
    entry.dirty_index = dirty_.size();
    dirty_.push_back(&entry);
  }

  /// Takes a changed entry off the dirty list in O(1) (the last one moves into its place).
  void unlist_dirty(Entry& entry) {
    const std::size_t i = entry.dirty_index;
    dirty_[i] = dirty_.back();
    dirty_[i]->dirty_index = i;
    dirty_.pop_back();
    entry.dirty_index = kClean;
  }

  static Value decode_or_throw(const std::string& bytes, const std::string& key) {
    auto value = Codec::decode(bytes);
    if (!value)
      throw StoreError("corrupt state record under key '" + rollup::quote_input(key) + "' (" +
                       std::to_string(key.size()) + " bytes)");
    return std::move(*value);
  }

  /// Caches a key that is not cached, in a free ring slot or in the one eviction frees.
  Value& add(const std::string& key, std::uint64_t hash, Value value, bool dirty) {
    Entry* entry = nullptr;
    if (ring_.size() < capacity_) {
      entry = ring_.emplace_back(std::make_unique<Entry>()).get();
    } else {
      entry = evict_one();
    }
    entry->key.assign(key);
    entry->hash = hash;
    entry->value = std::move(value);
    entry->referenced = true;
    index_.add(entry, hash);
    if (dirty) set_dirty(*entry);
    return entry->value;
  }

  /// Empties the entry under the clock hand (giving referenced entries a second chance) and
  /// returns it for reuse.
  Entry* evict_one() {
    for (;;) {
      if (hand_ >= ring_.size()) hand_ = 0;
      Entry& entry = *ring_[hand_++];
      if (entry.referenced) {
        entry.referenced = false;
        continue;
      }
      if (entry.dirty_index != kClean) {
        std::string bytes = Codec::encode(entry.value);
        pending_bytes_ += entry.key.view().size() + bytes.size();
        unlist_dirty(entry);
        pending_[entry.key.str()] = std::move(bytes);  // never in pending and cached at once
      }
      index_.remove(entry, entry.hash);
      return &entry;
    }
  }

  StateStore& store_;
  std::size_t capacity_;
  Index index_;
  /// Every entry, in clock order; an evicted entry's object is reused in place, so entries
  /// never move and records are allocated once per slot, not once per load.
  std::vector<std::unique_ptr<Entry>> ring_;
  std::size_t hand_ = 0;
  std::vector<Entry*> dirty_;  ///< changed entries, each once
  std::unordered_map<std::string, std::string> pending_;
  std::size_t pending_bytes_ = 0;
};

}  // namespace pqa::scorer
