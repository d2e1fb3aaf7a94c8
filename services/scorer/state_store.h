// The key-value store behind the scorer's state, and its two implementations.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pqa::scorer {

/// A set of writes applied atomically.
struct WriteSet {
  std::vector<std::pair<std::string, std::string>> puts;
  std::vector<std::string> deletes;
  bool empty() const { return puts.empty() && deletes.empty(); }
};

/// Size figures a store reports for monitoring (estimates).
struct StoreStats {
  std::uint64_t size_bytes = 0;  ///< on disk and in memtables
  std::uint64_t estimated_keys = 0;
  std::uint64_t reads = 0;           ///< get() calls since the store was opened
  std::uint64_t reads_filtered = 0;  ///< of them, answered "not found" by the new-key filter
};

/// Ordered byte-string key-value store. "Not found" is std::nullopt, never an empty value.
/// Single-threaded use: one owner (the processor) calls it.
class StateStore {
 public:
  virtual ~StateStore() = default;
  virtual std::optional<std::string> get(std::string_view key) = 0;
  /// Applies every write or none; throws StoreError on an I/O failure.
  virtual void commit(const WriteSet& writes) = 0;
  /// Like commit(), but the store may apply the writes after it returns (see
  /// BackgroundWriteStore); reads see them at once either way, and a failure is raised by a
  /// later call. The default applies them before returning.
  virtual void commit_in_background(WriteSet&& writes) { commit(writes); }
  /// Visits keys starting with `prefix` in ascending byte order.
  virtual void scan(
      std::string_view prefix,
      const std::function<void(std::string_view key, std::string_view value)>& fn) = 0;
  virtual StoreStats stats() = 0;
};

/// Raised on storage I/O failures: data cannot be guaranteed, so processing must stop.
class StoreError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// One memory budget for several stores (the partitions of a service instance): one block
/// cache, and one write-buffer manager that flushes when the memtables of all stores together
/// reach their share, their memory charged to the same cache. Opaque: RocksDB types stay in
/// the .cpp.
class SharedRocksDbMemory;
/// `block_cache_bytes` + `write_buffer_bytes` bound the RocksDB memory of every store opened
/// with the result, however many there are.
std::shared_ptr<SharedRocksDbMemory> make_shared_rocksdb_memory(std::size_t block_cache_bytes,
                                                                std::size_t write_buffer_bytes);

struct RocksDbOptions {
  std::string path;
  std::size_t block_cache_bytes = 256u << 20;
  std::size_t write_buffer_bytes = 64u << 20;
  bool disable_wal = false;
  /// Batches of at least this many records whose keys come sorted and unique are written as a
  /// table file and ingested instead of going through the memtable; 0: never.
  std::size_t ingest_min_records = 50'000;
  /// Memtable inserts start their search where the last insert of the same record type (the
  /// key's first byte) landed. Batches come sorted, so that is next to the new key. Off only
  /// in benchmarks that measure what it saves.
  bool memtable_insert_hints = true;
  /// Size of the filter of keys written (KeyFilter), kept when the store is opened empty: a
  /// read of a key never written (a new account, user or identity) is answered from it
  /// instead of probing RocksDB's memtable, every level-0 file and every level. 0: off.
  std::size_t new_key_filter_bytes = 16u << 20;
  /// When set, the store uses it instead of a cache and write buffers of its own.
  std::shared_ptr<SharedRocksDbMemory> shared_memory;
};

/// RocksDB on local disk.
std::unique_ptr<StateStore> open_rocksdb_store(const RocksDbOptions& options);
/// In-memory store for unit tests (a std::map).
std::unique_ptr<StateStore> make_memory_store();

}  // namespace pqa::scorer
