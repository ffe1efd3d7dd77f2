// RocksDB adapter of StateStore. The only file of the core that includes RocksDB headers.
#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>
#include <rocksdb/write_buffer_manager.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>

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

// StorageFaults made real: a file system whose writes fail while the faults say so. Files are
// opened through it, so a fault set later reaches files already open (the write-ahead log).
rocksdb::IOStatus FaultStatus(StorageFaults* faults) {
  switch (faults->kind()) {
    case StorageFaults::Kind::kNone:
      return rocksdb::IOStatus::OK();
    case StorageFaults::Kind::kNoSpace:
      faults->CountRefused();
      return rocksdb::IOStatus::NoSpace("injected fault: no space left on device");
    case StorageFaults::Kind::kIOError:
      break;
  }
  faults->CountRefused();
  return rocksdb::IOStatus::IOError("injected fault: write error");
}

class FaultyWritableFile : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  FaultyWritableFile(std::unique_ptr<rocksdb::FSWritableFile> file,
                     std::shared_ptr<StorageFaults> faults)
      : FSWritableFileOwnerWrapper(std::move(file)), faults_(std::move(faults)) {}

  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                           rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = FaultStatus(faults_.get());
    return s.ok() ? FSWritableFileOwnerWrapper::Append(data, options, dbg) : s;
  }
  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                           const rocksdb::DataVerificationInfo& info,
                           rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = FaultStatus(faults_.get());
    return s.ok() ? FSWritableFileOwnerWrapper::Append(data, options, info, dbg) : s;
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data, uint64_t offset,
                                     const rocksdb::IOOptions& options,
                                     rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = FaultStatus(faults_.get());
    return s.ok() ? FSWritableFileOwnerWrapper::PositionedAppend(data, offset, options, dbg) : s;
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data, uint64_t offset,
                                     const rocksdb::IOOptions& options,
                                     const rocksdb::DataVerificationInfo& info,
                                     rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = FaultStatus(faults_.get());
    return s.ok() ? FSWritableFileOwnerWrapper::PositionedAppend(data, offset, options, info, dbg)
                  : s;
  }
  rocksdb::IOStatus Sync(const rocksdb::IOOptions& options, rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = FaultStatus(faults_.get());
    return s.ok() ? FSWritableFileOwnerWrapper::Sync(options, dbg) : s;
  }
  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& options, rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = FaultStatus(faults_.get());
    return s.ok() ? FSWritableFileOwnerWrapper::Fsync(options, dbg) : s;
  }

 private:
  std::shared_ptr<StorageFaults> faults_;
};

class FaultyFileSystem : public rocksdb::FileSystemWrapper {
 public:
  FaultyFileSystem(const std::shared_ptr<rocksdb::FileSystem>& base,
                   std::shared_ptr<StorageFaults> faults)
      : FileSystemWrapper(base), faults_(std::move(faults)) {}
  const char* Name() const override { return "StreamrecFaultyFileSystem"; }

  rocksdb::IOStatus NewWritableFile(const std::string& fname, const rocksdb::FileOptions& options,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = FaultStatus(faults_.get());
    if (!s.ok()) return s;
    return Wrap(FileSystemWrapper::NewWritableFile(fname, options, result, dbg), result);
  }
  rocksdb::IOStatus ReopenWritableFile(const std::string& fname,
                                       const rocksdb::FileOptions& options,
                                       std::unique_ptr<rocksdb::FSWritableFile>* result,
                                       rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = FaultStatus(faults_.get());
    if (!s.ok()) return s;
    return Wrap(FileSystemWrapper::ReopenWritableFile(fname, options, result, dbg), result);
  }
  rocksdb::IOStatus ReuseWritableFile(const std::string& fname, const std::string& old_fname,
                                      const rocksdb::FileOptions& options,
                                      std::unique_ptr<rocksdb::FSWritableFile>* result,
                                      rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = FaultStatus(faults_.get());
    if (!s.ok()) return s;
    return Wrap(FileSystemWrapper::ReuseWritableFile(fname, old_fname, options, result, dbg),
                result);
  }

 private:
  // The file just opened (`opened` OK), wrapped so that its writes fail while faults are set.
  rocksdb::IOStatus Wrap(rocksdb::IOStatus opened, std::unique_ptr<rocksdb::FSWritableFile>* file) {
    if (opened.ok()) *file = std::make_unique<FaultyWritableFile>(std::move(*file), faults_);
    return opened;
  }

  std::shared_ptr<StorageFaults> faults_;
};

// One open RocksDB database and its column family handles ([0] the default family, then Column
// order). Shared by the store and its snapshot views; closed when the last of them lets go.
struct RocksInstance {
  rocksdb::DB* db = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;

  RocksInstance() = default;
  RocksInstance(const RocksInstance&) = delete;
  RocksInstance& operator=(const RocksInstance&) = delete;
  ~RocksInstance() {
    for (auto* handle : handles) db->DestroyColumnFamilyHandle(handle).PermitUncheckedError();
    if (db != nullptr) db->Close().PermitUncheckedError();
    delete db;
  }
  rocksdb::ColumnFamilyHandle* cf(Column column) const {
    return handles[static_cast<size_t>(column) + 1];
  }
};

class RocksStateStore : public StateStore {
 public:
  ~RocksStateStore() override {
    // A view releases its snapshot; the instance closes with its last holder.
    if (snapshot_ != nullptr) instance_->db->ReleaseSnapshot(snapshot_);
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

    auto store = std::unique_ptr<RocksStateStore>(new RocksStateStore());
    rocksdb::DBOptions& db_options = store->db_options_;
    db_options.create_if_missing = true;
    db_options.create_missing_column_families = true;
    db_options.max_background_jobs = 2;
    db_options.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
    db_options.keep_log_file_num = 3;
    if (options.faults != nullptr) {
      store->fault_env_ = rocksdb::NewCompositeEnv(
          std::make_shared<FaultyFileSystem>(rocksdb::FileSystem::Default(), options.faults));
      db_options.env = store->fault_env_.get();
    }
    if (options.memtable_budget_mb > 0) {
      db_options.write_buffer_manager = std::make_shared<rocksdb::WriteBufferManager>(
          static_cast<size_t>(options.memtable_budget_mb) << 20);
    }
    store->descriptors_.emplace_back(rocksdb::kDefaultColumnFamilyName, cf_options);
    for (int c = 0; c < kNumColumns; ++c) {
      store->descriptors_.emplace_back(ColumnName(static_cast<Column>(c)), cf_options);
    }
    store->path_ = options.path;
    store->sync_ = options.sync_wal;
    auto instance = store->OpenInstance();
    if (!instance.ok()) return instance.status();
    store->instance_ = std::move(instance).value();
    STREAMREC_RETURN_IF_ERROR(CheckStoreFormat(store.get(), options.path));
    return std::unique_ptr<StateStore>(std::move(store));
  }

  Status Get(Column column, std::string_view key, std::string* value) override {
    auto in = Acquire();
    if (in == nullptr) return Reopening();
    rocksdb::Status s = in->db->Get(Reads(), in->cf(column), key, value);
    if (s.IsNotFound()) return Status::NotFound(std::string(ColumnName(column)) + " key");
    return FromRocks(s, "get");
  }

  Status MultiGet(Column column, const std::vector<std::string>& keys,
                  std::vector<std::string>* values, std::vector<bool>* found) override {
    const size_t n = keys.size();
    values->assign(n, std::string());
    found->assign(n, false);
    if (n == 0) return Status::OK();
    auto in = Acquire();
    if (in == nullptr) return Reopening();
    std::vector<rocksdb::Slice> slices(keys.begin(), keys.end());
    std::vector<rocksdb::PinnableSlice> pinned(n);
    std::vector<rocksdb::Status> statuses(n);
    in->db->MultiGet(Reads(), in->cf(column), n, slices.data(), pinned.data(), statuses.data());
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

  Status Write(const WriteSet& writes) override { return WriteWith(writes, /*wal=*/true); }
  Status WriteWithoutLog(const WriteSet& writes) override {
    return WriteWith(writes, /*wal=*/false);
  }
  // The order in which `writes` go into the batch: each column's keys ascending, so that each
  // memtable insert starts its skiplist search from the previous one's position instead of from
  // the top (RocksDB keeps that position between inserts; for a batch of random customers this
  // saves most of the search). Stable, and never across a DeleteRange: a key written twice keeps
  // its last value, and a range deletes exactly what was written before it.
  static const std::vector<size_t>& InsertionOrder(const WriteSet& writes) {
    const std::vector<WriteSet::Op>& ops = writes.ops();
    thread_local std::vector<size_t> order;
    order.resize(ops.size());
    for (size_t i = 0; i < ops.size(); ++i) order[i] = i;
    auto by_key = [&ops](size_t a, size_t b) {
      if (ops[a].column != ops[b].column) return ops[a].column < ops[b].column;
      return ops[a].key < ops[b].key;
    };
    size_t begin = 0;
    for (size_t i = 0; i <= ops.size(); ++i) {
      if (i < ops.size() && !ops[i].is_range) continue;
      if (i - begin > 1) std::stable_sort(order.begin() + begin, order.begin() + i, by_key);
      begin = i + 1;
    }
    return order;
  }

  Status WriteWith(const WriteSet& writes, bool wal) {
    if (is_view_) return Status::NotSupported("write to a read-only store snapshot");
    auto in = Acquire();
    if (in == nullptr) return Reopening();
    // One batch, reused by every write that finds it free: its buffer keeps its capacity, so a
    // micro-batch's megabytes are neither regrown by doubling nor faulted in afresh at every
    // write (that took ~5 % of a throughput run's CPU). A concurrent writer builds its own.
    std::unique_lock<std::mutex> reuse(batch_mu_, std::try_to_lock);
    rocksdb::WriteBatch local;
    rocksdb::WriteBatch* batch = reuse.owns_lock() ? &batch_ : &local;
    batch->Clear();
    Status status;
    for (const size_t i : InsertionOrder(writes)) {
      const WriteSet::Op& op = writes.ops()[i];
      rocksdb::Status s = op.is_range    ? batch->DeleteRange(in->cf(op.column), op.key, op.end_key)
                          : op.is_delete ? batch->Delete(in->cf(op.column), op.key)
                                         : batch->Put(in->cf(op.column), op.key, op.value);
      if (!s.ok()) {
        status = FromRocks(s, "write batch");
        break;
      }
    }
    if (status.ok()) {
      rocksdb::WriteOptions wo;
      wo.sync = sync_ && wal;
      wo.disableWAL = !wal;
      status = FromRocks(in->db->Write(wo, batch), "write");
    }
    // A restore's or a re-fit's rare giant write does not keep its buffer.
    if (batch == &batch_ && batch_.GetDataSize() > kMaxKeptBatchBytes) batch_ = rocksdb::WriteBatch();
    return status;
  }

  Status ScanFrom(Column column, std::string_view prefix, std::string_view start,
                  const std::function<bool(std::string_view, std::string_view)>& visit) override {
    auto in = Acquire();
    if (in == nullptr) return Reopening();
    rocksdb::ReadOptions ro = Reads();
    ro.fill_cache = false;
    // Bound the iterator to the prefix so it stops at the prefix's end instead of walking on.
    std::string upper = PrefixSuccessor(prefix);
    rocksdb::Slice upper_slice(upper);
    if (!upper.empty()) ro.iterate_upper_bound = &upper_slice;
    std::unique_ptr<rocksdb::Iterator> it(in->db->NewIterator(ro, in->cf(column)));
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
    if (is_view_) return Status::OK();
    auto in = Acquire();
    if (in == nullptr) return Reopening();
    rocksdb::FlushOptions fo;
    std::vector<rocksdb::ColumnFamilyHandle*> families(in->handles.begin() + 1, in->handles.end());
    return FromRocks(in->db->Flush(fo, families), "flush");
  }

  uint64_t ApproximateSize() override {
    auto in = Acquire();
    if (in == nullptr) return 0;
    uint64_t total = 0;
    for (size_t i = 1; i < in->handles.size(); ++i) {
      uint64_t v = 0;
      if (in->db->GetIntProperty(in->handles[i], "rocksdb.total-sst-files-size", &v)) total += v;
      if (in->db->GetIntProperty(in->handles[i], "rocksdb.cur-size-all-mem-tables", &v)) total += v;
    }
    return total;
  }

  Status CompactAll() override {
    if (is_view_) return Status::NotSupported("compaction of a read-only view");
    STREAMREC_RETURN_IF_ERROR(Flush());
    auto in = Acquire();
    if (in == nullptr) return Reopening();
    rocksdb::CompactRangeOptions options;
    options.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
    for (size_t i = 1; i < in->handles.size(); ++i) {
      STREAMREC_RETURN_IF_ERROR(FromRocks(
          in->db->CompactRange(options, in->handles[i], nullptr, nullptr), "compaction"));
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
    auto in = Acquire();
    if (in == nullptr) return out;
    for (const auto& [name, property] : kFamilyProperties) {
      uint64_t total = 0;
      for (size_t i = 1; i < in->handles.size(); ++i) {
        uint64_t v = 0;
        if (in->db->GetIntProperty(in->handles[i], property, &v)) total += v;
      }
      out[name] = total;
    }
    // Bytes written since the store opened, by flushes (RocksDB's L0 row) and by compactions
    // (the other levels): the write amplification, and the CPU compaction spent merging.
    uint64_t flushed = 0, compacted_written = 0, compacted_read = 0, compaction_cpu_us = 0;
    for (size_t i = 1; i < in->handles.size(); ++i) {
      std::map<std::string, std::string> stats;
      if (!in->db->GetMapProperty(in->handles[i], rocksdb::DB::Properties::kCFStats, &stats)) {
        continue;
      }
      auto stat = [&stats](const char* key) {
        auto it = stats.find(key);
        return it == stats.end() ? 0.0 : std::strtod(it->second.c_str(), nullptr);
      };
      constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
      const double flush_gb = stat("compaction.L0.WriteGB");
      flushed += static_cast<uint64_t>(flush_gb * kGiB);
      compacted_written +=
          static_cast<uint64_t>(std::max(0.0, stat("compaction.Sum.WriteGB") - flush_gb) * kGiB);
      compacted_read += static_cast<uint64_t>(stat("compaction.Sum.ReadGB") * kGiB);
      compaction_cpu_us += static_cast<uint64_t>(
          std::max(0.0, stat("compaction.Sum.CompMergeCPU") - stat("compaction.L0.CompMergeCPU")) *
          1e6);
    }
    out["flush_written_bytes"] = flushed;
    out["compaction_written_bytes"] = compacted_written;
    out["compaction_read_bytes"] = compacted_read;
    out["compaction_cpu_micros"] = compaction_cpu_us;
    // One block cache is shared by every family: read it once.
    uint64_t cache = 0;
    if (in->db->GetIntProperty(in->handles[0], "rocksdb.block-cache-usage", &cache)) {
      out["block_cache_usage_bytes"] = cache;
    }
    return out;
  }

  Status Resume() override {
    if (is_view_) return Status::OK();
    if (auto in = Acquire(); in != nullptr) {
      rocksdb::Status s = in->db->Resume();
      if (s.ok()) return Status::OK();
      // RocksDB clears only some errors itself: a failed write-ahead-log write is fatal to the
      // open instance. Once the disk takes writes again, the database is closed and opened
      // again here, in the process: the WAL replays every write that was acknowledged.
    }
    STREAMREC_RETURN_IF_ERROR(ProbeWritable());
    return Reopen();
  }

  std::unique_ptr<StateStore> Snapshot() override {
    auto view = std::unique_ptr<RocksStateStore>(new RocksStateStore());
    view->instance_ = Acquire();
    // While Reopen swaps the instance, a view that answers every read with an IOError.
    if (view->instance_ != nullptr) view->snapshot_ = view->instance_->db->GetSnapshot();
    view->is_view_ = true;
    return view;
  }

 private:
  RocksStateStore() = default;

  StatusOr<std::shared_ptr<RocksInstance>> OpenInstance() {
    auto instance = std::make_shared<RocksInstance>();
    rocksdb::Status s =
        rocksdb::DB::Open(db_options_, path_, descriptors_, &instance->handles, &instance->db);
    if (!s.ok()) return FromRocks(s, "cannot open state store '" + path_ + "'");
    return instance;
  }

  // The open instance; null while Reopen swaps it.
  std::shared_ptr<RocksInstance> Acquire() const {
    std::lock_guard<std::mutex> lock(mu_);
    return instance_;
  }
  static Status Reopening() {
    return Status::IOError("the state store is being reopened after a write error");
  }

  // Writes, syncs and removes a small file next to the database, through the same file system:
  // OK when the disk takes writes again.
  Status ProbeWritable() {
    rocksdb::Env* env = db_options_.env != nullptr ? db_options_.env : rocksdb::Env::Default();
    const std::string probe = path_ + "/WRITE_PROBE";
    std::unique_ptr<rocksdb::WritableFile> file;
    rocksdb::Status s = env->NewWritableFile(probe, &file, rocksdb::EnvOptions());
    if (s.ok()) s = file->Append(rocksdb::Slice("probe"));
    if (s.ok()) s = file->Sync();
    if (file != nullptr) file->Close().PermitUncheckedError();
    env->DeleteFile(probe).PermitUncheckedError();
    return FromRocks(s, "the state directory does not take writes yet");
  }

  // Closes the instance and opens the database again. Busy while a snapshot view or another
  // thread still uses the instance (retried by the caller).
  Status Reopen() {
    std::shared_ptr<RocksInstance> old;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (instance_ != nullptr && instance_.use_count() > 1) {
        return Status::Busy("state store in use by a snapshot; reopened on a later retry");
      }
      old = std::move(instance_);  // readers see "reopening" until the new one is in
    }
    old.reset();  // closes the database (one process may hold it open at a time)
    auto reopened = OpenInstance();
    if (!reopened.ok()) return reopened.status();
    std::lock_guard<std::mutex> lock(mu_);
    instance_ = std::move(reopened).value();
    return Status::OK();
  }

  // Read options of this store: at the snapshot for a view.
  rocksdb::ReadOptions Reads() const {
    rocksdb::ReadOptions ro;
    ro.snapshot = snapshot_;
    return ro;
  }

  // The fault-injecting Env (StoreOptions::faults); declared first so it outlives the instance.
  std::unique_ptr<rocksdb::Env> fault_env_;
  rocksdb::DBOptions db_options_;
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors_;
  std::string path_;
  bool sync_ = false;
  mutable std::mutex mu_;  // guards instance_ (swapped by Reopen)
  // The write batch WriteWith reuses, and whether a write holds it.
  static constexpr size_t kMaxKeptBatchBytes = 64 << 20;
  std::mutex batch_mu_;
  rocksdb::WriteBatch batch_;
  std::shared_ptr<RocksInstance> instance_;
  // Set in a view made by Snapshot(): reads see it, writes are refused; the view holds the
  // instance it was taken from.
  const rocksdb::Snapshot* snapshot_ = nullptr;
  bool is_view_ = false;
};

}  // namespace

StatusOr<std::unique_ptr<StateStore>> OpenRocksStateStore(const StoreOptions& options) {
  return RocksStateStore::Open(options);
}

}  // namespace streamrec
