// A StateStore decorator that writes batches on a helper thread, so that the thread scoring
// events does not wait for RocksDB.
#pragma once

#include <cstdint>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "key_filter.h"
#include "state_store.h"

namespace pqa::scorer {

/// commit_in_background() hands the batch to a helper thread and returns; the caller goes on
/// scoring while it is written. One batch is in flight at a time: the next one waits for it.
///
/// Why: with many accounts almost every event changes a record no other event of the flush
/// interval touches, and writing those records to RocksDB cost as much as scoring the events
/// (bench/RESULTS.md §2). On a second core the write overlaps the scoring instead.
///
/// Reads stay exact: get() answers from the batch in flight for the keys it holds, else from
/// the inner store (which must allow get() concurrently with commit(), as RocksDB does; the
/// in-memory test store does not). A Bloom filter of its keys (KeyFilter) answers the common
/// "not in the batch" from one cache line; a binary search over the sorted puts finds the value.
/// Every other call (commit, scan, stats, the next commit_in_background) first waits for the
/// batch in flight, so writes land in the order they were made.
///
/// Errors: a failed background write is rethrown as StoreError by the next call that waits
/// (wait() included); until then get() keeps answering from the batch, which is what the caller
/// wrote. The destructor waits too and, as it cannot throw, reports a failure on stderr:
/// callers that must know call wait() (or commit(), which waits) before they finish.
///
/// One owner thread calls it, as for every StateStore; the helper thread touches only the inner
/// store and the batch, which the owner reads but does not change while it is in flight.
class BackgroundWriteStore final : public StateStore {
 public:
  explicit BackgroundWriteStore(std::unique_ptr<StateStore> inner);
  ~BackgroundWriteStore() override;
  BackgroundWriteStore(const BackgroundWriteStore&) = delete;
  BackgroundWriteStore& operator=(const BackgroundWriteStore&) = delete;

  std::optional<std::string> get(std::string_view key) override;
  void commit(const WriteSet& writes) override;
  void commit_in_background(WriteSet&& writes) override;
  void scan(std::string_view prefix,
            const std::function<void(std::string_view key, std::string_view value)>& fn) override;
  StoreStats stats() override;

  /// Waits until the batch in flight, if any, is written; throws StoreError if that failed.
  void wait();
  /// Whether a batch is in flight (not yet waited for).
  bool writing() const { return in_flight_ != nullptr; }

 private:
  /// A batch being written, indexed for reads: puts sorted by key (the last put of a key
  /// wins, as in the store), deletes sorted, and a Bloom filter of all their keys.
  struct InFlight {
    WriteSet writes;
    std::optional<KeyFilter> keys;
    std::future<void> done;
  };
  /// What the batch in flight says about `key`: its value, "deleted", or nothing.
  enum class Overlay { kAbsent, kPut, kDeleted };
  Overlay look_up(std::string_view key, std::string& value) const;
  static void index(InFlight& batch);

  std::unique_ptr<StateStore> inner_;
  std::unique_ptr<InFlight> in_flight_;
};

}  // namespace pqa::scorer
