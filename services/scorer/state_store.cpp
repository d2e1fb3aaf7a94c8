#include "state_store.h"

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>
#include <rocksdb/write_buffer_manager.h>

#include <map>
#include <stdexcept>

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
  explicit RocksDbStore(const RocksDbOptions& o) : disable_wal_(o.disable_wal) {
    rocksdb::Options options;
    options.create_if_missing = true;
    options.write_buffer_size = o.write_buffer_bytes;
    options.max_background_jobs = 2;
    // Most lookups of a growing stream are for keys that do not exist yet (a new user, a new
    // account): Bloom filters answer those without reading data blocks, in the memtable too.
    options.memtable_whole_key_filtering = true;
    options.memtable_prefix_bloom_size_ratio = 0.05;
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
  }

  ~RocksDbStore() override {
    if (db_) db_->Close().PermitUncheckedError();
  }

  std::optional<std::string> get(std::string_view key) override {
    std::string value;
    auto s = db_->Get(rocksdb::ReadOptions(), rocksdb::Slice(key.data(), key.size()), &value);
    if (s.IsNotFound()) return std::nullopt;
    check(s, "RocksDB get");
    return value;
  }

  void commit(const WriteSet& writes) override {
    if (writes.empty()) return;
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
            property(rocksdb::DB::Properties::kEstimateNumKeys)};
  }

 private:
  std::unique_ptr<rocksdb::DB> db_;
  bool disable_wal_;
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
    return {bytes, data_.size()};
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
