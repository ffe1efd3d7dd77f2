// Store-independent parts of the StateStore contract: key layout, write sets, format stamp,
// digest.
#include "streamrec/state_store.h"

#include <algorithm>
#include <map>

#include "streamrec/features.h"

namespace streamrec {

namespace {

void AppendBigEndian32(std::string* out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out->push_back(static_cast<char>((v >> shift) & 0xff));
}
void AppendBigEndian64(std::string* out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out->push_back(static_cast<char>((v >> shift) & 0xff));
}

// FNV-1a, 128 bits: a fast, well-defined content digest (not a cryptographic hash).
class Fnv128 {
 public:
  void Update(std::string_view bytes) {
    for (unsigned char c : bytes) {
      h_ ^= c;
      h_ *= kPrime;
    }
  }
  void UpdateLength(size_t n) {
    std::string len;
    AppendBigEndian64(&len, n);
    Update(len);
  }
  unsigned __int128 value() const { return h_; }
  std::string Hex() const {
    static const char* kDigits = "0123456789abcdef";
    std::string out(32, '0');
    unsigned __int128 v = h_;
    for (int i = 31; i >= 0; --i) {
      out[i] = kDigits[static_cast<int>(v & 0xf)];
      v >>= 4;
    }
    return out;
  }

 private:
  static constexpr unsigned __int128 kPrime =
      (static_cast<unsigned __int128>(1) << 88) + (1u << 8) + 0x3b;
  unsigned __int128 h_ = (static_cast<unsigned __int128>(0x6c62272e07bb0142ULL) << 64) |
                         0x62b821756295c58dULL;
};

}  // namespace

const char* ColumnName(Column column) {
  switch (column) {
    case Column::kCustomers: return "customers";
    case Column::kItems: return "items";
    case Column::kModel: return "model";
    case Column::kPositions: return "positions";
    case Column::kOutbox: return "outbox";
    case Column::kMeta: return "meta";
    case Column::kLists: return "lists";
    case Column::kStandby: return "standby";
  }
  return "unknown";
}

std::string PartitionPrefix(uint32_t partition) {
  std::string key;
  AppendBigEndian32(&key, partition);
  return key;
}

uint32_t PartitionOfKey(std::string_view key) {
  if (key.size() < 4) return 0;
  uint32_t partition = 0;
  for (int b = 0; b < 4; ++b) partition = (partition << 8) | static_cast<uint8_t>(key[b]);
  return partition;
}

std::string PartitionKey(uint32_t partition, std::string_view id) {
  std::string key = PartitionPrefix(partition);
  key.append(id);
  return key;
}

std::string OutboxKey(uint32_t partition, uint64_t sequence) {
  std::string key = PartitionPrefix(partition);
  AppendBigEndian64(&key, sequence);
  return key;
}

std::string PositionKey(std::string_view source, uint32_t partition) {
  std::string key(source);
  key.push_back('\0');
  AppendBigEndian32(&key, partition);
  return key;
}

void WriteSet::Put(Column column, std::string key, std::string value) {
  ops_.push_back(Op{column, false, std::move(key), std::move(value)});
}

void WriteSet::Delete(Column column, std::string key) {
  ops_.push_back(Op{column, true, std::move(key), std::string()});
}

void WriteSet::DeleteRange(Column column, std::string begin_key, std::string end_key) {
  if (end_key <= begin_key) return;
  ops_.push_back(Op{column, true, std::move(begin_key), std::string(), true, std::move(end_key)});
}

void WriteSet::Append(WriteSet other) {
  if (ops_.empty()) {
    ops_ = std::move(other.ops_);
    return;
  }
  ops_.insert(ops_.end(), std::make_move_iterator(other.ops_.begin()),
              std::make_move_iterator(other.ops_.end()));
}

Status CheckStoreFormat(StateStore* store, std::string_view where) {
  std::string value;
  Status s = store->Get(Column::kMeta, "format_version", &value);
  if (s.IsNotFound()) {
    // A store holding data but no stamp was not written by streamrec.
    bool has_data = false;
    for (int c = 0; c < kNumColumns && !has_data; ++c) {
      if (static_cast<Column>(c) == Column::kMeta) continue;
      STREAMREC_RETURN_IF_ERROR(store->Scan(static_cast<Column>(c), "",
                                            [&](std::string_view, std::string_view) {
                                              has_data = true;
                                              return false;
                                            }));
    }
    if (has_data) {
      return Status::NotSupported("state store '" + std::string(where) +
                                  "' holds data but no format version stamp; it was not "
                                  "written by streamrec");
    }
    WriteSet stamp;
    stamp.Put(Column::kMeta, "format_version", std::to_string(kStoreFormatVersion));
    return store->Write(stamp);
  }
  STREAMREC_RETURN_IF_ERROR(s);
  if (value != std::to_string(kStoreFormatVersion)) {
    return Status::NotSupported("state store '" + std::string(where) +
                                "' was written in format version " + value +
                                "; this build of streamrec reads format version " +
                                std::to_string(kStoreFormatVersion) +
                                ". Use a new --state-dir, or the streamrec release that wrote it");
  }
  return Status::OK();
}

Status ScanCustomers(
    StateStore* store, const CustomerIdsInLogs& log_ids,
    const std::function<bool(std::string_view key, v1::CustomerState& state)>& visit) {
  return ScanCustomers(store, log_ids, nullptr, visit);
}

Status ScanCustomers(
    StateStore* store, const CustomerIdsInLogs& log_ids,
    const std::function<bool(std::string_view key)>& wanted,
    const std::function<bool(std::string_view key, v1::CustomerState& state)>& visit) {
  v1::CustomerState state;
  Status decode_status;
  STREAMREC_RETURN_IF_ERROR(
      store->Scan(Column::kCustomers, "", [&](std::string_view key, std::string_view value) {
        if (wanted && !wanted(key)) return true;
        decode_status = DecodeState(value, &state);
        if (!decode_status.ok()) {
          decode_status = Status::Corruption("customer " + log_ids.Name(CustomerIdOfKey(key)) +
                                             ": " +
                                             decode_status.message());
          return false;
        }
        return visit(key, state);
      }));
  return decode_status;
}

StatusOr<std::string> StateDigest(StateStore* store) {
  // The sum (mod 2^128) of one FNV-1a-128 per customer over (customer id, canonical state):
  // independent of key order and of the partition a customer lives in, so a state spread over
  // partitions or instances compares equal to the same state held in one.
  unsigned __int128 sum = 0;
  uint64_t customers = 0;
  v1::CustomerState state;
  std::string canonical;
  Status decode_status;
  Status s = store->Scan(Column::kCustomers, "", [&](std::string_view key, std::string_view value) {
    decode_status = DecodeState(value, &state);
    if (!decode_status.ok()) return false;
    // Publication bookkeeping depends on where micro-batches were cut, which restarts and
    // rebalances legitimately change; the features do not.
    state.clear_list_version();
    state.clear_list_hash();
    state.clear_list_as_of_ms();
    state.clear_list_model_version();
    state.clear_list_checked_ms();
    state.clear_list_recommender_version();
    state.clear_list_item_ids();
    // Online K-Means assignments depend on micro-batch composition too (the centres move once
    // per batch), so segments are not part of the feature state compared here.
    state.clear_cluster();
    state.clear_segment();
    state.clear_model_version();
    // Where the input came from (file lines, Kafka offsets), not what it did.
    state.clear_source_next_offset();
    canonical.clear();
    state.AppendToString(&canonical);
    Fnv128 hash;
    const std::string_view id = CustomerIdOfKey(key);
    hash.UpdateLength(id.size());
    hash.Update(id);
    hash.UpdateLength(canonical.size());
    hash.Update(canonical);
    sum += hash.value();
    ++customers;
    return true;
  });
  if (!s.ok()) return s;
  if (!decode_status.ok()) return decode_status;
  Fnv128 total;
  total.UpdateLength(customers);
  std::string bytes(16, '\0');
  for (int i = 0; i < 16; ++i) bytes[i] = static_cast<char>((sum >> (8 * i)) & 0xff);
  total.Update(bytes);
  return total.Hex();
}

// ---- in-memory store ----------------------------------------------------------------------

namespace {

class MemStateStore : public StateStore {
 public:
  Status Get(Column column, std::string_view key, std::string* value) override {
    const auto& map = columns_[static_cast<int>(column)];
    auto it = map.find(std::string(key));
    if (it == map.end()) return Status::NotFound(std::string(ColumnName(column)) + " key");
    *value = it->second;
    return Status::OK();
  }
  Status MultiGet(Column column, const std::vector<std::string>& keys,
                  std::vector<std::string>* values, std::vector<bool>* found) override {
    const auto& map = columns_[static_cast<int>(column)];
    values->assign(keys.size(), std::string());
    found->assign(keys.size(), false);
    for (size_t i = 0; i < keys.size(); ++i) {
      auto it = map.find(keys[i]);
      if (it != map.end()) {
        (*values)[i] = it->second;
        (*found)[i] = true;
      }
    }
    return Status::OK();
  }
  Status Write(const WriteSet& writes) override {
    if (read_only_) return Status::NotSupported("write to a read-only store snapshot");
    for (const auto& op : writes.ops()) {
      auto& map = columns_[static_cast<int>(op.column)];
      if (op.is_range) {
        map.erase(map.lower_bound(op.key), map.lower_bound(op.end_key));
      } else if (op.is_delete) {
        map.erase(op.key);
      } else {
        map[op.key] = op.value;
      }
    }
    return Status::OK();
  }
  Status ScanFrom(Column column, std::string_view prefix, std::string_view start,
                  const std::function<bool(std::string_view, std::string_view)>& visit) override {
    const auto snapshot = columns_[static_cast<int>(column)];
    std::string from = std::max(std::string(prefix), std::string(start));
    for (auto it = snapshot.lower_bound(from); it != snapshot.end(); ++it) {
      if (it->first.compare(0, prefix.size(), prefix) != 0) break;
      if (!visit(it->first, it->second)) break;
    }
    return Status::OK();
  }
  Status Flush() override { return Status::OK(); }
  uint64_t ApproximateSize() override { return 0; }
  std::unique_ptr<StateStore> Snapshot() override {
    auto view = std::make_unique<MemStateStore>();
    for (int c = 0; c < kNumColumns; ++c) view->columns_[c] = columns_[c];
    view->read_only_ = true;
    return view;
  }

 private:
  std::map<std::string, std::string> columns_[kNumColumns];
  bool read_only_ = false;  // a Snapshot
};

}  // namespace

std::unique_ptr<StateStore> NewMemStateStore() {
  auto store = std::make_unique<MemStateStore>();
  CheckStoreFormat(store.get(), "memory").IgnoreError();  // cannot fail on an empty map
  return store;
}

}  // namespace streamrec
