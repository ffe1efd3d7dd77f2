// RocksDB adapter of StateStore. The only file of the core that includes RocksDB headers.
#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>
#include <rocksdb/write_buffer_manager.h>

#include <filesystem>

#include "streamrec/state_store.h"

namespace streamrec {

namespace {

Status FromRocks(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return Status::OK();
  std::string msg = std::string(what) + ": " + s.ToString();
  if (s.IsNotFound()) return Status::NotFound(msg);
  if (s.IsCorruption()) return Status::Corruption(msg);
  if (s.IsNotSupported()) return Status::NotSupported(msg);
  if (s.IsInvalidArgument()) return Status::InvalidArgument(msg);
  if (s.IsBusy() || s.IsTryAgain()) return Status::Busy(msg);
  return Status::IOError(msg);
}

// The smallest key greater than every key starting with `prefix`; empty when there is none
// (an empty prefix, or all 0xff).
std::string PrefixSuccessor(std::string_view prefix) {
  std::string s(prefix);
  while (!s.empty()) {
    unsigned char last = static_cast<unsigned char>(s.back());
    if (last != 0xff) {
      s.back() = static_cast<char>(last + 1);
      return s;
    }
    s.pop_back();
  }
  return s;
}

StatusOr<rocksdb::CompressionType> ParseCompression(const std::string& name, const char* key) {
  if (name == "none") return rocksdb::kNoCompression;
  if (name == "snappy") return rocksdb::kSnappyCompression;
  if (name == "lz4") return rocksdb::kLZ4Compression;
  if (name == "zstd") return rocksdb::kZSTD;
  return Status::InvalidArgument(std::string(key) + ": unknown compression '" + name +
                                 "' (expected none, snappy, lz4 or zstd)");
}

class RocksStateStore : public StateStore {
 public:
  ~RocksStateStore() override {
    if (snapshot_ != nullptr) {
      // A view: the database belongs to the store it was taken from.
      db_->ReleaseSnapshot(snapshot_);
      return;
    }
    for (auto* handle : handles_) db_->DestroyColumnFamilyHandle(handle).PermitUncheckedError();
    handles_.clear();
    if (db_ != nullptr) db_->Close().PermitUncheckedError();
    delete db_;
  }

  static StatusOr<std::unique_ptr<StateStore>> Open(const StoreOptions& options) {
    if (options.path.empty()) return Status::InvalidArgument("state directory is not set");
    auto compression = ParseCompression(options.compression, "state.compression");
    if (!compression.ok()) return compression.status();
    auto bottommost = ParseCompression(options.bottommost_compression,
                                       "state.bottommost_compression");
    if (!bottommost.ok()) return bottommost.status();
    std::error_code ec;
    std::filesystem::create_directories(options.path, ec);
    if (ec) {
      return Status::IOError("cannot create state directory '" + options.path +
                             "': " + ec.message());
    }

    rocksdb::BlockBasedTableOptions table;
    table.block_cache = rocksdb::NewLRUCache(static_cast<size_t>(options.block_cache_mb) << 20);
    table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
    table.cache_index_and_filter_blocks = true;
    table.block_size = static_cast<size_t>(std::max(options.block_size_kb, 1)) << 10;
    rocksdb::ColumnFamilyOptions cf_options;
    cf_options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
    cf_options.compression = *compression;
    if (*bottommost != rocksdb::kNoCompression) {
      cf_options.bottommost_compression = *bottommost;
      rocksdb::CompressionOptions& z = cf_options.bottommost_compression_opts;
      z.enabled = true;
      if (*bottommost == rocksdb::kZSTD) z.level = options.zstd_level;
      z.max_dict_bytes = static_cast<uint32_t>(std::max(options.dictionary_kb, 0)) << 10;
      // zstd's dictionary trainer wants about a hundred times the dictionary in samples.
      z.zstd_max_train_bytes = *bottommost == rocksdb::kZSTD ? 100 * z.max_dict_bytes : 0;
    }
    cf_options.write_buffer_size = static_cast<size_t>(options.write_buffer_mb) << 20;

    rocksdb::DBOptions db_options;
    db_options.create_if_missing = true;
    db_options.create_missing_column_families = true;
    db_options.max_background_jobs = 2;
    db_options.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
    db_options.keep_log_file_num = 3;
    if (options.memtable_budget_mb > 0) {
      db_options.write_buffer_manager = std::make_shared<rocksdb::WriteBufferManager>(
          static_cast<size_t>(options.memtable_budget_mb) << 20);
    }

    std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
    descriptors.emplace_back(rocksdb::kDefaultColumnFamilyName, cf_options);
    for (int c = 0; c < kNumColumns; ++c) {
      descriptors.emplace_back(ColumnName(static_cast<Column>(c)), cf_options);
    }
    auto store = std::unique_ptr<RocksStateStore>(new RocksStateStore());
    store->sync_ = options.sync_wal;
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::Status s =
        rocksdb::DB::Open(db_options, options.path, descriptors, &handles, &store->db_);
    if (!s.ok()) {
      return FromRocks(s, "cannot open state store '" + options.path + "'");
    }
    store->handles_ = handles;  // [0] is the default family, then Column order
    STREAMREC_RETURN_IF_ERROR(CheckStoreFormat(store.get(), options.path));
    return std::unique_ptr<StateStore>(std::move(store));
  }

  Status Get(Column column, std::string_view key, std::string* value) override {
    rocksdb::Status s = db_->Get(Reads(), cf(column), key, value);
    if (s.IsNotFound()) return Status::NotFound(std::string(ColumnName(column)) + " key");
    return FromRocks(s, "get");
  }

  Status MultiGet(Column column, const std::vector<std::string>& keys,
                  std::vector<std::string>* values, std::vector<bool>* found) override {
    const size_t n = keys.size();
    values->assign(n, std::string());
    found->assign(n, false);
    if (n == 0) return Status::OK();
    std::vector<rocksdb::Slice> slices(keys.begin(), keys.end());
    std::vector<rocksdb::PinnableSlice> pinned(n);
    std::vector<rocksdb::Status> statuses(n);
    db_->MultiGet(Reads(), cf(column), n, slices.data(), pinned.data(), statuses.data());
    for (size_t i = 0; i < n; ++i) {
      if (statuses[i].ok()) {
        (*values)[i].assign(pinned[i].data(), pinned[i].size());
        (*found)[i] = true;
      } else if (!statuses[i].IsNotFound()) {
        return FromRocks(statuses[i], "multiget");
      }
    }
    return Status::OK();
  }

  Status Write(const WriteSet& writes) override {
    if (snapshot_ != nullptr) return Status::NotSupported("write to a read-only store snapshot");
    rocksdb::WriteBatch batch;
    for (const auto& op : writes.ops()) {
      rocksdb::Status s = op.is_range    ? batch.DeleteRange(cf(op.column), op.key, op.end_key)
                          : op.is_delete ? batch.Delete(cf(op.column), op.key)
                                         : batch.Put(cf(op.column), op.key, op.value);
      if (!s.ok()) return FromRocks(s, "write batch");
    }
    rocksdb::WriteOptions wo;
    wo.sync = sync_;
    return FromRocks(db_->Write(wo, &batch), "write");
  }

  Status ScanFrom(Column column, std::string_view prefix, std::string_view start,
                  const std::function<bool(std::string_view, std::string_view)>& visit) override {
    rocksdb::ReadOptions ro = Reads();
    ro.fill_cache = false;
    // Bound the iterator to the prefix so it stops at the prefix's end instead of walking on.
    std::string upper = PrefixSuccessor(prefix);
    rocksdb::Slice upper_slice(upper);
    if (!upper.empty()) ro.iterate_upper_bound = &upper_slice;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cf(column)));
    std::string_view from = start < prefix ? prefix : start;
    for (it->Seek(rocksdb::Slice(from.data(), from.size())); it->Valid(); it->Next()) {
      rocksdb::Slice key = it->key();
      if (!key.starts_with(rocksdb::Slice(prefix.data(), prefix.size()))) break;
      rocksdb::Slice value = it->value();
      if (!visit(std::string_view(key.data(), key.size()),
                 std::string_view(value.data(), value.size()))) {
        break;
      }
    }
    return FromRocks(it->status(), "scan");
  }

  Status Flush() override {
    if (snapshot_ != nullptr) return Status::OK();
    rocksdb::FlushOptions fo;
    std::vector<rocksdb::ColumnFamilyHandle*> families(handles_.begin() + 1, handles_.end());
    return FromRocks(db_->Flush(fo, families), "flush");
  }

  uint64_t ApproximateSize() override {
    uint64_t total = 0;
    for (size_t i = 1; i < handles_.size(); ++i) {
      uint64_t v = 0;
      if (db_->GetIntProperty(handles_[i], "rocksdb.total-sst-files-size", &v)) total += v;
      if (db_->GetIntProperty(handles_[i], "rocksdb.cur-size-all-mem-tables", &v)) total += v;
    }
    return total;
  }

  Status CompactAll() override {
    if (snapshot_ != nullptr) return Status::NotSupported("compaction of a read-only view");
    STREAMREC_RETURN_IF_ERROR(Flush());
    rocksdb::CompactRangeOptions options;
    options.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
    for (size_t i = 1; i < handles_.size(); ++i) {
      STREAMREC_RETURN_IF_ERROR(
          FromRocks(db_->CompactRange(options, handles_[i], nullptr, nullptr), "compaction"));
    }
    return Status::OK();
  }

  std::map<std::string, uint64_t> Properties() override {
    static const std::pair<const char*, const char*> kFamilyProperties[] = {
        {"sst_bytes", "rocksdb.total-sst-files-size"},
        {"live_data_bytes", "rocksdb.estimate-live-data-size"},
        {"pending_compaction_bytes", "rocksdb.estimate-pending-compaction-bytes"},
        {"memtable_bytes", "rocksdb.cur-size-all-mem-tables"},
        {"estimated_keys", "rocksdb.estimate-num-keys"},
    };
    std::map<std::string, uint64_t> out;
    for (const auto& [name, property] : kFamilyProperties) {
      uint64_t total = 0;
      for (size_t i = 1; i < handles_.size(); ++i) {
        uint64_t v = 0;
        if (db_->GetIntProperty(handles_[i], property, &v)) total += v;
      }
      out[name] = total;
    }
    // One block cache is shared by every family: read it once.
    uint64_t cache = 0;
    if (db_->GetIntProperty(handles_[0], "rocksdb.block-cache-usage", &cache)) {
      out["block_cache_usage_bytes"] = cache;
    }
    return out;
  }

  std::unique_ptr<StateStore> Snapshot() override {
    auto view = std::unique_ptr<RocksStateStore>(new RocksStateStore());
    view->db_ = db_;
    view->handles_ = handles_;
    view->snapshot_ = db_->GetSnapshot();
    return view;
  }

 private:
  RocksStateStore() = default;
  rocksdb::ColumnFamilyHandle* cf(Column column) const {
    return handles_[static_cast<size_t>(column) + 1];
  }
  // Read options of this store: at the snapshot for a view.
  rocksdb::ReadOptions Reads() const {
    rocksdb::ReadOptions ro;
    ro.snapshot = snapshot_;
    return ro;
  }

  rocksdb::DB* db_ = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  bool sync_ = false;
  // Set in a view made by Snapshot(): reads see it, writes are refused, and db_ and handles_
  // are borrowed from the store it was taken from.
  const rocksdb::Snapshot* snapshot_ = nullptr;
};

}  // namespace

StatusOr<std::unique_ptr<StateStore>> OpenRocksStateStore(const StoreOptions& options) {
  return RocksStateStore::Open(options);
}

}  // namespace streamrec
