// Restoring a partition's local state from its compacted changelog topic.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "config_loader.h"
#include "kafka.h"
#include "state_store.h"

namespace pqa::scorer {

/// Meta keys a partition's store keeps about its changelog.
namespace changelog_meta {
/// The changelog offset up to which this store holds the changes (decimal).
inline constexpr std::string_view kOffset = "changelog_offset";
/// "<topic>/<partition>": a store restored from another changelog is not reused.
inline constexpr std::string_view kSource = "changelog_source";
/// The input offset committed with the state (decimal). Unlike the two above it is a
/// changelog record, written by every transaction that commits the partition's offset, so a
/// restore can tell whether it has reached the commit the group's offset counts.
inline constexpr std::string_view kInputOffset = "input_offset";
}  // namespace changelog_meta

/// The input offset the store's state counts (its kInputOffset record: the offset the last
/// transaction that committed the partition's state also committed to the group), if it has
/// one. Corrupt (not a decimal offset): StoreError naming the record.
std::optional<std::int64_t> changelog_input_offset(StateStore& store);

/// A restore stopped because the service is shutting down; the store keeps its previous
/// checkpoint (records applied so far are full values: applying them again is harmless).
class RestoreInterrupted : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct RestoreResult {
  std::uint64_t records = 0;
  bool rebuilt = false;  ///< the local state was discarded and rebuilt from the start
  double seconds = 0;
};

/// Reads the committed records of the changelog partition after the store's checkpoint and
/// writes them into the store, so that it holds every committed change. A store without a
/// checkpoint, from another changelog topic (by name), or whose checkpoint is outside the
/// partition's offsets (records deleted, or a recreated topic still shorter than the
/// checkpoint) is cleared and rebuilt from the first record. A checkpoint is an offset and a
/// topic name: a topic recreated under the same name and grown past the checkpoint, or one on
/// another cluster, is not recognised, which is why docs/operations.md has local state deleted
/// whenever the changelog is recreated (as Kafka Streams' reset tool and cleanUp() do).
class ChangelogRestorer {
 public:
  /// Called as a restore goes on: records applied since the last call, and the changelog
  /// offsets still ahead of it (an estimate: transaction markers take offsets too).
  using Progress =
      std::function<void(int partition, std::uint64_t applied, std::int64_t remaining)>;

  ChangelogRestorer(const KafkaConfig& config, const std::atomic<bool>& stop);
  /// `committed_input`: the group's committed offset of the input partition (exactly once),
  /// or -1. The changelog's kInputOffset record names the offset each commit counted; one
  /// below it (or none) while a transaction is still open on the changelog partition means
  /// the commit is not settled there yet (markers are written partition by partition): the
  /// restore waits for that transaction to end, up to the producer's transaction.timeout.ms
  /// plus kafka.timeout_ms (by then the broker has aborted any transaction it still counts as
  /// open), and reads on; a transaction open past that is a hanging one, which throws a fatal
  /// KafkaError naming the way to abort it. With nothing open it goes on at once (a changelog
  /// of an older build, offsets moved forward by hand).
  RestoreResult restore(StateStore& store, int partition, std::int64_t committed_input = -1);
  void on_progress(Progress progress) { progress_ = std::move(progress); }

 private:
  /// Consumes [from, end of committed data) into the store; returns records applied and
  /// the last offset read (-1 if none). `high`: the end offset, for progress reports.
  std::pair<std::uint64_t, std::int64_t> copy_records(StateStore& store, int partition,
                                                      std::int64_t from, std::int64_t high);

  /// Reads on while the store's kInputOffset is below `committed_input` and a transaction
  /// on the changelog can still change that; returns the last offset read.
  std::int64_t settle(StateStore& store, int partition, std::int64_t committed_input,
                      std::int64_t last, RestoreResult& result);

  /// The committed low and high offsets once the committed end reaches `wanted_end`, or no
  /// transaction is open on the partition, or `deadline` has passed.
  std::pair<std::int64_t, std::int64_t> wait_while_pending(
      int partition, std::int64_t wanted_end, std::string_view what,
      std::chrono::steady_clock::time_point deadline);

  /// Whether a transaction is still open on the partition past `committed_end` (the
  /// read_committed end): a read_uncommitted client sees records beyond it.
  bool transaction_open(int partition, std::int64_t committed_end);

  /// Low and high offsets of the changelog partition as `client` sees them (read_committed:
  /// the high one is the last stable offset), retrying while the cluster settles.
  std::pair<std::int64_t, std::int64_t> watermarks(int partition, rd_kafka_t* client);
  /// Renews `client`'s view of the changelog topic (after a failed watermark query).
  void refresh_metadata(rd_kafka_t* client);

  void report(int partition, std::uint64_t applied, std::int64_t remaining) const {
    if (progress_) progress_(partition, applied, remaining);
  }

  std::string topic_;
  Progress progress_;
  std::chrono::milliseconds timeout_;
  /// How long a transaction may stay open below the group's offset: the producer's
  /// transaction.timeout.ms (the broker aborts one older) plus kafka.timeout_ms.
  std::chrono::milliseconds settle_limit_;
  const std::atomic<bool>& stop_;
  kafka::Handle consumer_;
  kafka::Handle uncommitted_;  ///< read_uncommitted: sees transactions still open
};

/// One changelog record as read; no value: a tombstone (the key was deleted).
struct ChangelogRecord {
  std::string key;
  std::optional<std::string> value;
};

/// Records read from a changelog, in offset order, as one write: each key once, with its last
/// record (a tombstone becomes a delete), puts and deletes each sorted by key. Committing it
/// leaves the store as applying the records one by one would. Sorted and unique, it is what
/// the store writes fastest: as a table file when large, else with memtable insert hints.
WriteSet coalesce_changelog(std::vector<ChangelogRecord> records);

/// Deletes every key of the store (a full rebuild follows).
void clear_store(StateStore& store);

}  // namespace pqa::scorer
