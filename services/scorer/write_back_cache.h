// A bounded write-back cache of decoded state records in front of the StateStore.
#pragma once

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

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
/// later get()/insert() on the same cache evicts them; the entry just returned is never the
/// next victim (it was marked referenced). Not thread-safe: owned by one processor.
template <typename Value, typename Codec>
class WriteBackCache {
 private:
  static constexpr std::size_t kClean = static_cast<std::size_t>(-1);

  struct Entry {
    Value value;
    std::size_t dirty_index = kClean;  ///< position in dirty_, kClean when unchanged
    bool referenced = true;
  };
  using Item = typename std::unordered_map<std::string, Entry>::value_type;

 public:
  WriteBackCache(StateStore& store, std::size_t capacity)
      : store_(store), capacity_(capacity < 1 ? 1 : capacity) {
    // Grown to its bound anyway on a busy stream: reserve up front (capped, so that a huge
    // configured bound does not allocate before it is used).
    entries_.max_load_factor(0.5f);  // short bucket chains: each step is a likely cache miss
    entries_.reserve(std::min<std::size_t>(capacity_, 1u << 20));
    ring_.reserve(std::min<std::size_t>(capacity_, 1u << 20));
  }

  /// The record under `key`, loaded from the store on a miss; nullptr if there is none.
  /// With CacheAccess::kUpdate the record is marked changed (the caller is about to modify it),
  /// which saves a second lookup. Throws StoreError on an undecodable record.
  Value* get(const std::string& key, CacheAccess access = CacheAccess::kRead) {
    if (auto it = entries_.find(key); it != entries_.end()) {
      it->second.referenced = true;
      if (access == CacheAccess::kUpdate) set_dirty(*it);
      return &it->second.value;
    }
    if (auto p = pending_.find(key); p != pending_.end()) {
      // Back from pending: it becomes a changed entry again, and pending forgets it, so a key
      // is never written twice in one batch.
      auto value = decode_or_throw(p->second, key);
      pending_bytes_ -= p->first.size() + p->second.size();
      pending_.erase(p);
      return &emplace(key, std::move(value), true);
    }
    auto bytes = store_.get(key);
    if (!bytes) return nullptr;
    return &emplace(key, decode_or_throw(*bytes, key), access == CacheAccess::kUpdate);
  }

  /// Adds a new record (marked changed).
  Value& insert(const std::string& key, Value value) {
    return emplace(key, std::move(value), true);
  }

  /// Marks the record under `key` (which must be cached) as changed.
  void mark_dirty(const std::string& key) {
    if (auto it = entries_.find(key); it != entries_.end()) set_dirty(*it);
  }

  /// Moves every change into `out` (each key at most once) and marks the cache clean.
  void collect_writes(WriteSet& out) {
    for (auto& [k, v] : pending_) out.puts.emplace_back(k, std::move(v));
    pending_.clear();
    pending_bytes_ = 0;
    for (Item* item : dirty_) {
      out.puts.emplace_back(item->first, Codec::encode(item->second.value));
      item->second.dirty_index = kClean;
    }
    dirty_.clear();
  }

  /// Bytes of changed records evicted since the last collect_writes (memory awaiting a flush).
  std::size_t pending_bytes() const { return pending_bytes_; }

 private:
  void set_dirty(Item& item) {
    if (item.second.dirty_index != kClean) return;
    item.second.dirty_index = dirty_.size();
    dirty_.push_back(&item);
  }

  /// Takes a changed entry off the dirty list in O(1) (the last one moves into its place).
  void unlist_dirty(Item& item) {
    const std::size_t i = item.second.dirty_index;
    dirty_[i] = dirty_.back();
    dirty_[i]->second.dirty_index = i;
    dirty_.pop_back();
    item.second.dirty_index = kClean;
  }

  static Value decode_or_throw(const std::string& bytes, const std::string& key) {
    auto value = Codec::decode(bytes);
    if (!value)
      throw StoreError("corrupt state record under key of " + std::to_string(key.size()) +
                       " bytes (keyspace '" + key.substr(0, 1) + "')");
    return std::move(*value);
  }

  Value& emplace(const std::string& key, Value value, bool dirty) {
    if (auto existing = entries_.find(key); existing != entries_.end()) {
      existing->second.value = std::move(value);
      existing->second.referenced = true;
      if (dirty) set_dirty(*existing);
      return existing->second.value;
    }
    std::size_t slot = ring_.size();
    if (entries_.size() >= capacity_) slot = evict_one();
    Item& item = *entries_.try_emplace(key, Entry{std::move(value), kClean, true}).first;
    if (slot == ring_.size())
      ring_.push_back(&item);
    else
      ring_[slot] = &item;
    if (dirty) set_dirty(item);
    return item.second.value;
  }

  /// Frees the ring slot under the clock hand (giving referenced entries a second chance) and
  /// returns it.
  std::size_t evict_one() {
    for (;;) {
      if (hand_ >= ring_.size()) hand_ = 0;
      Item& item = *ring_[hand_];
      if (item.second.referenced) {
        item.second.referenced = false;
        ++hand_;
        continue;
      }
      if (item.second.dirty_index != kClean) {
        std::string bytes = Codec::encode(item.second.value);
        pending_bytes_ += item.first.size() + bytes.size();
        pending_[item.first] = std::move(bytes);  // a key is never in pending and cached at once
        unlist_dirty(item);
      }
      entries_.erase(item.first);
      return hand_++;
    }
  }

  StateStore& store_;
  std::size_t capacity_;
  std::unordered_map<std::string, Entry> entries_;
  std::vector<Item*> ring_;  ///< entries in clock order (map nodes are stable)
  std::size_t hand_ = 0;
  std::vector<Item*> dirty_;  ///< changed entries (map nodes are stable), each once
  std::unordered_map<std::string, std::string> pending_;
  std::size_t pending_bytes_ = 0;
};

}  // namespace pqa::scorer
