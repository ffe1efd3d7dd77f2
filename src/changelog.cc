#include "streamrec/changelog.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <utility>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>

#include "streamrec/features.h"

namespace streamrec {

namespace {

// CustomerState.source_next_offset of an encoded state (EncodeState), read without decoding the
// rest: the restore stores the bytes as they are, and a full parse (item tables, strings) was
// most of its time per record. Errors like DecodeState's.
StatusOr<uint64_t> EncodedSourceNextOffset(std::string_view bytes) {
  using google::protobuf::internal::WireFormatLite;
  constexpr int kField = v1::CustomerState::kSourceNextOffsetFieldNumber;
  if (bytes.empty() || static_cast<uint8_t>(bytes[0]) != kStateFormatVersion) {
    v1::CustomerState unused;
    STREAMREC_RETURN_IF_ERROR(DecodeState(bytes, &unused));  // names what is wrong
  }
  const int size = static_cast<int>(bytes.size() - 1);
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data() + 1),
                                            size);
  uint64_t value = 0;
  bool ok = true;
  while (ok) {
    const uint32_t tag = in.ReadTag();
    if (tag == 0) break;  // the end, or a tag that cannot be (position tells below)
    if (WireFormatLite::GetTagFieldNumber(tag) == kField &&
        WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_VARINT) {
      ok = in.ReadVarint64(&value);  // the last occurrence wins, as in a parse
    } else {
      ok = WireFormatLite::SkipField(&in, tag);
    }
  }
  if (!ok || in.CurrentPosition() != size) {
    return Status::Corruption("cannot parse streamrec.v1.CustomerState (" +
                              std::to_string(bytes.size()) + " bytes)");
  }
  return value;
}

}  // namespace

ChangelogLoader::ChangelogLoader(StateStore* store, std::string source_name, uint32_t partition,
                                 size_t batch_records)
    : store_(store),
      source_name_(std::move(source_name)),
      partition_(partition),
      batch_records_(std::max<size_t>(1, batch_records)) {}

void ChangelogLoader::NoteList(uint64_t offset, std::string_view key,
                               const std::string_view* value) {
  if (value == nullptr || key.substr(0, kChangelogListPrefix.size()) != kChangelogListPrefix) return;
  if (published_mark_ >= 0 && offset < static_cast<uint64_t>(published_mark_)) return;
  unpublished_.emplace_back(offset, std::string(*value));
}

std::vector<std::string> ChangelogLoader::TakeUnpublishedLists() {
  // Nothing below the latest mark is left: a mark drops the lists before it, NoteList refuses them.
  std::vector<std::string> lists;
  lists.reserve(unpublished_.size());
  for (auto& entry : unpublished_) lists.push_back(std::move(entry.second));
  unpublished_.clear();
  return lists;
}

Status ChangelogLoader::Add(uint64_t offset, std::string_view key,
                            const std::string_view* value) {
  STREAMREC_RETURN_IF_ERROR(BeginOnce());
  ++records_;
  if (key.empty()) {
    return Status::Corruption("changelog record without a key at offset " +
                              std::to_string(offset));
  }
  if (key == kChangelogPositionKey) {
    if (value == nullptr) return Status::OK();
    Status s = DecodeState(*value, &position_);
    if (!s.ok()) {
      return Status::Corruption("changelog position record at offset " + std::to_string(offset) +
                                ": " + s.message());
    }
    position_found_ = true;
    ++positions_;
    return Status::OK();
  }
  if (key == kChangelogPublishedKey) {
    if (value == nullptr) return Status::OK();
    char* end = nullptr;
    const std::string text(*value);
    const long long mark = std::strtoll(text.c_str(), &end, 10);
    if (text.empty() || end != text.c_str() + text.size() || mark < 0) {
      return Status::Corruption("changelog progress mark at offset " + std::to_string(offset) +
                                ": '" + text + "' is not an offset");
    }
    published_mark_ = mark;
    while (!unpublished_.empty() && unpublished_.front().first < static_cast<uint64_t>(mark)) {
      unpublished_.pop_front();
    }
    return Status::OK();
  }
  if (key.substr(0, kChangelogListPrefix.size()) == kChangelogListPrefix) {
    ++lists_;
    if (collect_lists_) NoteList(offset, key, value);
    return Apply(Column::kLists, key.substr(kChangelogListPrefix.size()), value);
  }
  if (key.substr(0, kChangelogItemPrefix.size()) == kChangelogItemPrefix) {
    ++items_;
    if (value != nullptr) {
      ItemStats stats;
      Status s = DecodeState(*value, &stats);
      if (!s.ok()) {
        return Status::Corruption("changelog item statistics at offset " +
                                  std::to_string(offset) + ": " + s.message());
      }
    }
    return Apply(Column::kItems, key.substr(kChangelogItemPrefix.size()), value);
  }
  ++states_;
  if (value != nullptr) {
    auto source_next_offset = EncodedSourceNextOffset(*value);
    if (!source_next_offset.ok()) {
      return Status::Corruption("changelog customer state at offset " + std::to_string(offset) +
                                ": " + source_next_offset.status().message());
    }
    restored_through_ = std::max(restored_through_, *source_next_offset);
  }
  return Apply(Column::kCustomers, key, value);
}

namespace {

// The "meta" key marking a restore of (source, partition) in progress.
std::string RestoreMarkKey(std::string_view source_name, uint32_t partition) {
  return "restoring:" + PositionKey(source_name, partition);
}

}  // namespace

StatusOr<v1::SourcePosition> LoadPosition(StateStore* store, std::string_view source_name,
                                          uint32_t partition) {
  v1::SourcePosition position;
  std::string value;
  Status s = store->Get(Column::kPositions, PositionKey(source_name, partition), &value);
  if (s.ok()) {
    STREAMREC_RETURN_IF_ERROR(DecodeState(value, &position));
  } else if (s.IsNotFound()) {
    position.set_source(std::string(source_name));
    position.set_partition(partition);
  } else {
    return s;
  }
  return position;
}

StatusOr<uint64_t> StoreId(StateStore* store) {
  std::string value;
  Status s = store->Get(Column::kMeta, "store_id", &value);
  if (s.ok()) return std::strtoull(value.c_str(), nullptr, 16);
  if (!s.IsNotFound()) return s;
  std::random_device device;
  uint64_t id = 0;
  while (id == 0) id = (static_cast<uint64_t>(device()) << 32) ^ device();
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(id));
  WriteSet stamp;
  stamp.Put(Column::kMeta, "store_id", hex);
  STREAMREC_RETURN_IF_ERROR(store->Write(stamp));
  return id;
}

StatusOr<bool> RestoreIncomplete(StateStore* store, std::string_view source_name,
                                 uint32_t partition) {
  std::string value;
  Status s = store->Get(Column::kMeta, RestoreMarkKey(source_name, partition), &value);
  if (s.IsNotFound()) return false;
  if (!s.ok()) return s;
  return true;
}

Status ChangelogLoader::Apply(Column column, std::string_view id, const std::string_view* value) {
  std::string stored_key = PartitionKey(partition_, id);
  if (value == nullptr) {
    batch_.Delete(column, std::move(stored_key));
  } else {
    batch_.Put(column, std::move(stored_key), std::string(*value));
  }
  return batch_.size() >= batch_records_ ? WriteBatch() : Status::OK();
}

Status ChangelogLoader::BeginOnce() {
  if (cleared_) return Status::OK();
  WriteSet mark;
  mark.Put(Column::kMeta, RestoreMarkKey(source_name_, partition_), "1");
  STREAMREC_RETURN_IF_ERROR(store_->Write(mark));
  cleared_ = true;
  batch_.DeleteRange(Column::kCustomers, PartitionPrefix(partition_),
                     PartitionPrefix(partition_ + 1));
  batch_.DeleteRange(Column::kLists, PartitionPrefix(partition_), PartitionPrefix(partition_ + 1));
  batch_.DeleteRange(Column::kItems, PartitionPrefix(partition_), PartitionPrefix(partition_ + 1));
  return Status::OK();
}

Status ChangelogLoader::WriteBatch() {
  if (batch_.empty()) return Status::OK();
  Status s = store_->WriteWithoutLog(batch_);
  batch_.Clear();
  return s;
}

Status ChangelogLoader::Finish() {
  STREAMREC_RETURN_IF_ERROR(BeginOnce());  // an empty changelog: the partition is empty too
  STREAMREC_RETURN_IF_ERROR(WriteBatch());
  STREAMREC_RETURN_IF_ERROR(store_->Flush());
  // The position last, with the write-ahead log: once stored, the restore is complete.
  auto local = LoadPosition(store_, source_name_, partition_);
  if (!local.ok()) return local.status();
  if (!position_found_) position_.Clear();
  position_.set_source(source_name_);
  position_.set_partition(partition_);
  position_.set_restored_through(std::max(position_.restored_through(), restored_through_));
  // This store's outbox may still hold records of the partition under its own numbering.
  position_.set_outbox_seq(std::max(position_.outbox_seq(), local->outbox_seq()));
  position_.clear_refresh_cursor();
  WriteSet done;
  done.Put(Column::kPositions, PositionKey(source_name_, partition_), EncodeState(position_));
  done.Delete(Column::kMeta, RestoreMarkKey(source_name_, partition_));
  return store_->Write(done);
}

}  // namespace streamrec
