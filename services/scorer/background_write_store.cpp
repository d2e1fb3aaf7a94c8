#include "background_write_store.h"

#include <algorithm>
#include <cstdio>
#include <functional>

namespace pqa::scorer {

BackgroundWriteStore::BackgroundWriteStore(std::unique_ptr<StateStore> inner)
    : inner_(std::move(inner)) {}

BackgroundWriteStore::~BackgroundWriteStore() {
  try {
    wait();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pqa-scorer: state write failed (at close): %s\n", e.what());
  }
}

void BackgroundWriteStore::wait() {
  if (!in_flight_) return;
  // Whatever the outcome, the batch is no longer in flight: a failure is reported once.
  const std::unique_ptr<InFlight> batch = std::move(in_flight_);
  batch->done.get();  // rethrows the helper thread's StoreError
}

void BackgroundWriteStore::index(InFlight& batch) {
  auto& puts = batch.writes.puts;
  auto& deletes = batch.writes.deletes;
  // The processor hands over puts already in key order; stable, so that among equal keys the
  // last put (the one the store keeps) stays last.
  const auto by_key = [](const auto& x, const auto& y) { return x.first < y.first; };
  if (!std::is_sorted(puts.begin(), puts.end(), by_key))
    std::stable_sort(puts.begin(), puts.end(), by_key);
  std::sort(deletes.begin(), deletes.end());
  // 16 bits per key: about 0.1 % of absent keys pay for a binary search.
  batch.keys.emplace(2 * (puts.size() + deletes.size()));
  for (const auto& put : puts) batch.keys->add(put.first);
  for (const auto& key : deletes) batch.keys->add(key);
}

BackgroundWriteStore::Overlay BackgroundWriteStore::look_up(std::string_view key,
                                                            std::string& value) const {
  if (!in_flight_ || !in_flight_->keys->may_contain(key)) return Overlay::kAbsent;
  const WriteSet& writes = in_flight_->writes;
  // A store applies a batch's deletes after its puts: a deleted key is gone.
  if (std::binary_search(writes.deletes.begin(), writes.deletes.end(), key))
    return Overlay::kDeleted;
  auto after = std::upper_bound(writes.puts.begin(), writes.puts.end(), key,
                                [](std::string_view k, const auto& put) { return k < put.first; });
  if (after == writes.puts.begin() || std::prev(after)->first != key) return Overlay::kAbsent;
  value = std::prev(after)->second;
  return Overlay::kPut;
}

std::optional<std::string> BackgroundWriteStore::get(std::string_view key) {
  std::string value;
  switch (look_up(key, value)) {
    case Overlay::kPut:
      return value;
    case Overlay::kDeleted:
      return std::nullopt;
    case Overlay::kAbsent:
      break;
  }
  // Either the key is not in the batch in flight or there is none: the inner store has the
  // latest value (RocksDB reads a batch being written atomically: all of it or none).
  return inner_->get(key);
}

void BackgroundWriteStore::commit(const WriteSet& writes) {
  wait();
  inner_->commit(writes);
}

void BackgroundWriteStore::commit_in_background(WriteSet&& writes) {
  wait();
  if (writes.empty()) return;
  auto batch = std::make_unique<InFlight>();
  batch->writes = std::move(writes);
  index(*batch);
  // The helper reads the batch, which stays put (owned by in_flight_) until wait() has joined.
  batch->done = std::async(std::launch::async,
                           [store = inner_.get(), w = &batch->writes] { store->commit(*w); });
  in_flight_ = std::move(batch);
}

void BackgroundWriteStore::scan(
    std::string_view prefix,
    const std::function<void(std::string_view key, std::string_view value)>& fn) {
  wait();
  inner_->scan(prefix, fn);
}

StoreStats BackgroundWriteStore::stats() {
  wait();
  return inner_->stats();
}

}  // namespace pqa::scorer
