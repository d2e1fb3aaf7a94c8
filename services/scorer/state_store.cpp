#include "state_store.h"

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/sst_file_writer.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>
#include <rocksdb/write_buffer_manager.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <stdexcept>

#include "key_filter.h"

namespace pqa::scorer {

class SharedRocksDbMemory {
 public:
  SharedRocksDbMemory(std::size_t block_cache_bytes, std::size_t write_buffer_bytes)
      : cache(rocksdb::NewLRUCache(block_cache_bytes + write_buffer_bytes)),
        write_buffers(std::make_shared<rocksdb::WriteBufferManager>(write_buffer_bytes, cache)) {}
  std::shared_ptr<rocksdb::Cache> cache;
  std::shared_ptr<rocksdb::WriteBufferManager> write_buffers;
};

std::shared_ptr<SharedRocksDbMemory> make_shared_rocksdb_memory(std::size_t block_cache_bytes,
                                                                std::size_t write_buffer_bytes) {
  return std::make_shared<SharedRocksDbMemory>(block_cache_bytes, write_buffer_bytes);
}

namespace {

void check(const rocksdb::Status& s, std::string_view what) {
  if (!s.ok()) throw StoreError(std::string(what) + ": " + s.ToString());
}

class RocksDbStore final : public StateStore {
 public:
  explicit RocksDbStore(const RocksDbOptions& o)
      : disable_wal_(o.disable_wal),
        ingest_min_records_(o.ingest_min_records),
        ingest_dir_(std::filesystem::path(o.path) / "ingest") {
    rocksdb::Options& options = options_;
    options.create_if_missing = true;
    options.write_buffer_size = o.write_buffer_bytes;
    options.max_background_jobs = 2;
    // Most lookups of a growing stream are for keys that do not exist yet (a new user, a new
    // account): Bloom filters answer those without reading data blocks, in the memtable too.
    options.memtable_whole_key_filtering = true;
    options.memtable_prefix_bloom_size_ratio = 0.05;
    // Every key begins with its record type (keys::kAccount, kUser, ...) and a batch arrives
    // sorted, so the previous insert of the same type is the new key's neighbour: with a
    // hint per type, the skiplist search starts there instead of at the head.
    if (o.memtable_insert_hints)
      options.memtable_insert_with_hint_prefix_extractor.reset(rocksdb::NewFixedPrefixTransform(1));
    // With the WAL on, a clean shutdown need not flush the memtable: it is replayed at open.
    options.avoid_flush_during_shutdown = !o.disable_wal;
    rocksdb::BlockBasedTableOptions table;
    if (o.shared_memory) {
      table.block_cache = o.shared_memory->cache;
      options.write_buffer_manager = o.shared_memory->write_buffers;
    } else {
      table.block_cache = rocksdb::NewLRUCache(o.block_cache_bytes);
    }
    table.cache_index_and_filter_blocks = true;  // keeps memory inside the block-cache bound
    table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
    table.whole_key_filtering = true;
    options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
    rocksdb::DB* raw = nullptr;
    check(rocksdb::DB::Open(options, o.path, &raw), "opening RocksDB at " + o.path);
    db_.reset(raw);
    // A file left by a write that a crash interrupted was never part of the store.
    std::error_code ignored;
    std::filesystem::remove_all(ingest_dir_, ignored);
    // Only a store that starts empty sees every key it will hold pass through commit().
    if (o.new_key_filter_bytes > 0 && is_empty()) written_keys_.emplace(o.new_key_filter_bytes);
  }

  ~RocksDbStore() override {
    if (db_) db_->Close().PermitUncheckedError();
  }

  std::optional<std::string> get(std::string_view key) override {
    ++reads_;
    if (written_keys_ && !written_keys_->may_contain(key)) {
      ++reads_filtered_;
      return std::nullopt;
    }
    std::string value;
    auto s = db_->Get(rocksdb::ReadOptions(), rocksdb::Slice(key.data(), key.size()), &value);
    if (s.IsNotFound()) return std::nullopt;
    check(s, "RocksDB get");
    return value;
  }

  void commit(const WriteSet& writes) override {
    if (writes.empty()) return;
    // Before the write: a failed write leaves keys in the filter that the store lacks, which
    // costs a read, never a wrong answer.
    if (written_keys_)
      for (const auto& put : writes.puts) written_keys_->add(put.first);
    if (should_ingest(writes)) return ingest(writes);
    rocksdb::WriteBatch batch;
    for (const auto& [k, v] : writes.puts) check(batch.Put(k, v), "RocksDB batch put");
    for (const auto& k : writes.deletes) check(batch.Delete(k), "RocksDB batch delete");
    rocksdb::WriteOptions wo;
    wo.disableWAL = disable_wal_;
    check(db_->Write(wo, &batch), "RocksDB write");
  }

  void scan(std::string_view prefix,
            const std::function<void(std::string_view, std::string_view)>& fn) override {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    const rocksdb::Slice p(prefix.data(), prefix.size());
    for (it->Seek(p); it->Valid() && it->key().starts_with(p); it->Next())
      fn(std::string_view(it->key().data(), it->key().size()),
         std::string_view(it->value().data(), it->value().size()));
    check(it->status(), "RocksDB scan");
  }

  StoreStats stats() override {
    const auto property = [this](const std::string& name) {
      std::uint64_t value = 0;
      return db_->GetIntProperty(name, &value) ? value : 0;
    };
    return {property(rocksdb::DB::Properties::kTotalSstFilesSize) +
                property(rocksdb::DB::Properties::kCurSizeAllMemTables),
            property(rocksdb::DB::Properties::kEstimateNumKeys), reads_, reads_filtered_};
  }

 private:
  /// No live key. (A store holding only tombstones, say a crash between a restore's wipe and
  /// its puts, is stepped through once here; it is empty all the same.)
  bool is_empty() {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    it->SeekToFirst();
    check(it->status(), "RocksDB scan");
    return !it->Valid();
  }

  /// A large batch whose keys are already sorted and unique (the processor's flushes, a wipe)
  /// is written as one table file and ingested: no memtable inserts, no WAL, no later flush
  /// of the same data. Measured in bench/RESULTS.md section 2.
  bool should_ingest(const WriteSet& writes) const {
    if (ingest_min_records_ == 0 ||
        writes.puts.size() + writes.deletes.size() < ingest_min_records_)
      return false;
    const auto unordered_puts = [](const auto& x, const auto& y) { return !(x.first < y.first); };
    const auto unordered_keys = [](const auto& x, const auto& y) { return !(x < y); };
    return std::adjacent_find(writes.puts.begin(), writes.puts.end(), unordered_puts) ==
               writes.puts.end() &&
           std::adjacent_find(writes.deletes.begin(), writes.deletes.end(), unordered_keys) ==
               writes.deletes.end();
  }

  /// Writes the puts and deletes merged in key order (a key in both is deleted, as a batch
  /// applies its deletes after its puts) to one file, synced, then ingests it: all or nothing.
  void ingest(const WriteSet& writes) {
    std::error_code error;
    std::filesystem::create_directories(ingest_dir_, error);
    if (error) throw StoreError("creating " + ingest_dir_.string() + ": " + error.message());
    const auto file = ingest_dir_ / (std::to_string(++ingested_files_) + ".sst");
    struct RemoveOnExit {  // after a failure; a successful ingestion has moved the file
      std::filesystem::path path;
      ~RemoveOnExit() {
        std::error_code ignored;
        std::filesystem::remove(path, ignored);
      }
    } cleanup{file};
    rocksdb::SstFileWriter writer(rocksdb::EnvOptions(options_), options_);
    check(writer.Open(file.string()), "RocksDB table file for ingestion");
    auto put = writes.puts.begin();
    auto del = writes.deletes.begin();
    while (put != writes.puts.end() || del != writes.deletes.end()) {
      if (del == writes.deletes.end() || (put != writes.puts.end() && put->first < *del)) {
        check(writer.Put(put->first, put->second), "RocksDB table file put");
        ++put;
      } else {
        if (put != writes.puts.end() && put->first == *del) ++put;
        check(writer.Delete(*del), "RocksDB table file delete");
        ++del;
      }
    }
    check(writer.Finish(), "RocksDB table file for ingestion");
    rocksdb::IngestExternalFileOptions ingest;
    ingest.move_files = true;  // a hard link into the store, not a copy
    check(db_->IngestExternalFile({file.string()}, ingest), "RocksDB ingestion");
  }

  rocksdb::Options options_;
  std::unique_ptr<rocksdb::DB> db_;
  bool disable_wal_;
  std::size_t ingest_min_records_;
  std::filesystem::path ingest_dir_;
  std::uint64_t ingested_files_ = 0;
  std::optional<KeyFilter> written_keys_;  ///< every key put since the store was empty
  std::uint64_t reads_ = 0;
  std::uint64_t reads_filtered_ = 0;
};

class MemoryStore final : public StateStore {
 public:
  std::optional<std::string> get(std::string_view key) override {
    auto it = data_.find(std::string(key));
    if (it == data_.end()) return std::nullopt;
    return it->second;
  }
  void commit(const WriteSet& writes) override {
    for (const auto& [k, v] : writes.puts) data_[k] = v;
    for (const auto& k : writes.deletes) data_.erase(k);
  }
  void scan(std::string_view prefix,
            const std::function<void(std::string_view, std::string_view)>& fn) override {
    for (auto it = data_.lower_bound(std::string(prefix));
         it != data_.end() && std::string_view(it->first).starts_with(prefix); ++it)
      fn(it->first, it->second);
  }
  StoreStats stats() override {
    std::uint64_t bytes = 0;
    for (const auto& [k, v] : data_) bytes += k.size() + v.size();
    return StoreStats{.size_bytes = bytes, .estimated_keys = data_.size()};
  }

 private:
  std::map<std::string, std::string> data_;
};

}  // namespace

std::unique_ptr<StateStore> open_rocksdb_store(const RocksDbOptions& options) {
  return std::make_unique<RocksDbStore>(options);
}

std::unique_ptr<StateStore> make_memory_store() {
  return std::make_unique<MemoryStore>();
}

}  // namespace pqa::scorer
