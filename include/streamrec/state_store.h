// StateStore: the durable home of streamrec's state. An ordered key-value store with column
// families and atomic multi-column write sets — RocksDB in production (OpenRocksStateStore),
// an in-memory map in tests (NewMemStateStore). The core never sees RocksDB headers.
#ifndef STREAMREC_STATE_STORE_H_
#define STREAMREC_STATE_STORE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "streamrec/pseudonym.h"
#include "streamrec/status.h"

namespace streamrec {

// Column families. Per-partition data (customers, positions, outbox) is keyed by partition
// first, so a partition's state can be scanned, dropped or handed over on its own.
enum class Column : int {
  kCustomers = 0,  // PartitionKey(p, customer_id) -> CustomerState
  kItems,          // PartitionKey(p, item_id) -> ItemStats of the partition's purchases
  kModel,          // model versions (global)
  kPositions,      // PositionKey(source, p) -> SourcePosition
  kOutbox,         // OutboxKey(p, seq) -> OutboxRecord
  kMeta,           // name -> value (format version, ...)
  kLists,          // PartitionKey(p, customer_id) -> the RecommendationList last published
  // PartitionKey(p, changelog key) -> changelog value: standby copies of partitions another
  // instance owns (kafka.standby_replicas, src/kafka/standby.h). Nothing else reads them.
  kStandby,
};
constexpr int kNumColumns = 8;
// "customers", "items", "model", "positions", "outbox", "meta", "lists", "standby".
const char* ColumnName(Column column);

// Fixed-width big-endian partition prefix + customer id: keys sort by partition.
std::string PartitionKey(uint32_t partition, std::string_view id);
std::string PartitionPrefix(uint32_t partition);
// The partition of a key made by PartitionKey (0 for a key shorter than the prefix).
uint32_t PartitionOfKey(std::string_view key);
// The customer id of a key made by PartitionKey (empty for a key shorter than the prefix).
inline std::string_view CustomerIdOfKey(std::string_view key) {
  return key.size() < 4 ? std::string_view() : key.substr(4);
}
std::string OutboxKey(uint32_t partition, uint64_t sequence);
std::string PositionKey(std::string_view source, uint32_t partition);

// A set of puts and deletes applied atomically by StateStore::Write, in the order they were
// added (a put after a delete of its key wins, and the other way round).
class WriteSet {
 public:
  void Put(Column column, std::string key, std::string value);
  void Delete(Column column, std::string key);
  // Deletes every key k of `column` with begin_key <= k < end_key (half-open; nothing when
  // end_key <= begin_key, and then no operation is added). One operation however many keys it
  // covers: a queue reader deletes what it consumed without naming each key (RocksDB writes one
  // range tombstone).
  void DeleteRange(Column column, std::string begin_key, std::string end_key);
  // Appends `other`'s operations after this set's (later puts of a key win).
  void Append(WriteSet other);
  size_t size() const { return ops_.size(); }
  bool empty() const { return ops_.empty(); }
  void Clear() { ops_.clear(); }

  struct Op {
    Column column;
    bool is_delete;             // Delete or DeleteRange
    std::string key;            // DeleteRange: the first key of the range
    std::string value;          // Put only
    bool is_range = false;      // DeleteRange: every key in [key, end_key)
    std::string end_key = {};   // DeleteRange only; > key
  };
  const std::vector<Op>& ops() const { return ops_; }

 private:
  std::vector<Op> ops_;
};

class StateStore {
 public:
  virtual ~StateStore() = default;

  // NotFound when absent.
  virtual Status Get(Column column, std::string_view key, std::string* value) = 0;
  // Looks up `keys` at one consistent point; (*found)[i] says whether (*values)[i] is set.
  virtual Status MultiGet(Column column, const std::vector<std::string>& keys,
                          std::vector<std::string>* values, std::vector<bool>* found) = 0;
  // Applies every operation of `writes` or none.
  virtual Status Write(const WriteSet& writes) = 0;
  // Like Write, without the write-ahead log (bulk loads: a restore from the changelog): the
  // writes survive a crash only once Flush returned. Then write what marks the load complete
  // with Write.
  virtual Status WriteWithoutLog(const WriteSet& writes) { return Write(writes); }
  // Visits the keys starting with `prefix` in key order, on a consistent snapshot taken at the
  // call; stops early when `visit` returns false.
  virtual Status Scan(Column column, std::string_view prefix,
                      const std::function<bool(std::string_view key, std::string_view value)>&
                          visit) {
    return ScanFrom(column, prefix, prefix, visit);
  }
  // Like Scan, starting at the first key >= `start` (which should begin with `prefix`). Queue
  // readers use it to skip what they consumed: deleted keys stay as tombstones until
  // compaction, and scanning over them from the prefix would cost O(everything ever queued).
  virtual Status ScanFrom(Column column, std::string_view prefix, std::string_view start,
                          const std::function<bool(std::string_view key, std::string_view value)>&
                              visit) = 0;
  // Makes everything written so far durable (memtable flush); a no-op in memory.
  virtual Status Flush() = 0;
  // A read-only view of the store as it is now: it never sees later writes, and it may be read
  // on another thread while this store keeps writing (a background re-fit reads its input from
  // one, taken between two batches). Write on the view fails with NotSupported; Flush does
  // nothing. REQUIRES: the view goes away before the store. RocksDB: a snapshot (cheap to take;
  // versions of keys overwritten since are kept until the view is released). In memory: a copy.
  virtual std::unique_ptr<StateStore> Snapshot() = 0;
  // Approximate bytes on disk (0 in memory).
  virtual uint64_t ApproximateSize() = 0;
  // Engine figures for monitoring, summed over the column families: "sst_bytes",
  // "live_data_bytes", "pending_compaction_bytes", "memtable_bytes", "estimated_keys",
  // "block_cache_usage_bytes"; since the store opened: "flush_written_bytes",
  // "compaction_written_bytes", "compaction_read_bytes", "compaction_cpu_micros". Empty in memory.
  virtual std::map<std::string, uint64_t> Properties() { return {}; }
  // Flushes and compacts every column family fully (benchmarks: bytes per customer after
  // compaction). A no-op in memory.
  virtual Status CompactAll() { return Status::OK(); }
  // After a failed write (a disk error, a full disk): RocksDB refuses every later write until
  // the error is cleared. Tries to clear it (DB::Resume: flushes the memtables, starts a new
  // write-ahead log); OK when the store takes writes again, else the error that remains. A
  // no-op in memory.
  virtual Status Resume() { return Status::OK(); }
};

// Test hook (StoreOptions::faults): while set, every file write of a RocksDB store fails — the
// write-ahead log, flushes and compactions alike — as a failing disk (IOError) or a full one
// (NoSpace) would make them. Thread-safe; share one between a test and the store it opened.
class StorageFaults {
 public:
  enum class Kind : int { kNone = 0, kIOError, kNoSpace };
  void Set(Kind kind) { kind_.store(static_cast<int>(kind)); }
  void Clear() { Set(Kind::kNone); }
  Kind kind() const { return static_cast<Kind>(kind_.load()); }
  // "None", "WriteError", "DiskFull" (test names).
  static const char* KindName(Kind kind) {
    return kind == Kind::kIOError ? "WriteError" : kind == Kind::kNoSpace ? "DiskFull" : "None";
  }
  // File writes refused so far.
  uint64_t refused() const { return refused_.load(); }
  void CountRefused() { refused_.fetch_add(1); }

 private:
  std::atomic<int> kind_{0};
  std::atomic<uint64_t> refused_{0};
};

struct StoreOptions {
  // Directory of the RocksDB instance; created when missing.
  std::string path;
  // fsync the write-ahead log on every batch commit. true: a machine crash loses nothing;
  // false (default): a process crash loses nothing, a power loss may lose the last batches
  // (they are then re-read from the source, since positions are in the same batch).
  bool sync_wal = false;
  // Block cache for reads, MiB. Hot customers' states live here.
  int block_cache_mb = 256;
  // Block compression of the upper levels (fresh data, flushed and compacted often): "none",
  // "snappy", "lz4" or "zstd".
  std::string compression = "lz4";
  // Compression of the last level, where nearly all data ends up ("none" = as `compression`).
  // zstd with a dictionary trained per file: states and lists repeat the same field names,
  // item ids and reason sentences, which a 16 KiB block alone compresses far less.
  std::string bottommost_compression = "zstd";
  int zstd_level = 6;
  int dictionary_kb = 32;  // 0 = no dictionary
  // Uncompressed size of a data block, KiB: larger blocks compress better, cost more per read.
  int block_size_kb = 16;
  // Write buffer (memtable) size per column family, MiB.
  int write_buffer_mb = 64;
  // All column families' memtables together, MiB: a shared budget beyond which the largest is
  // flushed, so memory does not grow with the number of column families (0 = no cap).
  int memtable_budget_mb = 256;
  // Test hook, not a configuration key: file writes fail while it is set (see StorageFaults).
  std::shared_ptr<StorageFaults> faults;
};

// Opens (creating if needed) a RocksDB store with all column families, then checks the store's
// format version (meta "format_version"): a store written by an incompatible version fails with
// NotSupported naming the directory and both versions. A new store is stamped with ours.
StatusOr<std::unique_ptr<StateStore>> OpenRocksStateStore(const StoreOptions& options);

// An in-memory store with the same semantics (tests, evaluation). Stamped like a RocksDB one.
std::unique_ptr<StateStore> NewMemStateStore();

// The store format this build writes. Bump when an encoding changes incompatibly.
// 2: item statistics are kept per input partition (a version-1 store kept one global table).
constexpr uint32_t kStoreFormatVersion = 2;
// Stamps an empty store with kStoreFormatVersion, or checks the stamp of an existing one.
Status CheckStoreFormat(StateStore* store, std::string_view where);

// Visits every stored customer (its key and decoded state, which `visit` may modify as scratch)
// in key order; stops early when `visit` returns false. A value that does not decode stops the
// scan with Corruption naming the customer as `log_ids` says (the message may reach a log).
namespace v1 {
class CustomerState;
}
Status ScanCustomers(
    StateStore* store, const CustomerIdsInLogs& log_ids,
    const std::function<bool(std::string_view key, v1::CustomerState& state)>& visit);
// The same, but a customer whose key `wanted` refuses is neither decoded nor visited: a fit that
// samples customers by a hash of their id (the key is PartitionKey(p, id): the id is
// CustomerIdOfKey(key)) skips the decoding of everyone outside its sample, most of the store at scale.
Status ScanCustomers(
    StateStore* store, const CustomerIdsInLogs& log_ids,
    const std::function<bool(std::string_view key)>& wanted,
    const std::function<bool(std::string_view key, v1::CustomerState& state)>& visit);

// A digest of every customer's state (hex, 32 characters): two stores with equal digests hold
// the same features and counts for the same customers, byte for byte. Excluded: list
// publication bookkeeping (version, content hash, as_of, items) and the segment assignment
// (cluster, segment, model version: the online K-Means centres move once per micro-batch), which
// both depend on where micro-batches were cut; the source offset a customer was last updated
// at, which depends on the source (file lines, Kafka offsets); and the global item statistics,
// whose floating-point sums depend on how partitions interleave. A restart or a rebalance
// legitimately changes all of them. (A file replay of the same input still reproduces them
// exactly.)
// Order-independent and partition-independent: the same customers with the same states give the
// same digest whether they live in one partition or many, in one store or several.
StatusOr<std::string> StateDigest(StateStore* store);

}  // namespace streamrec

#endif  // STREAMREC_STATE_STORE_H_
