#include "kafka/outbox_publisher.h"

#include <algorithm>

#include "streamrec/changelog.h"
#include "streamrec/features.h"
#include "streamrec/pipeline.h"

namespace streamrec {

namespace {

constexpr const char* kSchemaVersion = "1";

RdKafka::Headers* MakeHeaders(const v1::OutboxRecord& record, const std::string& format) {
  RdKafka::Headers* headers = RdKafka::Headers::create();
  const bool json = format == "json";
  switch (record.payload_case()) {
    case v1::OutboxRecord::kList:
      headers->add("content-type", json ? "application/json"
                                        : "application/x-protobuf; messageType=streamrec.v1.RecommendationList");
      headers->add("schema-version", kSchemaVersion);
      headers->add("model-version", std::to_string(record.list().model_version()));
      headers->add("list-version", std::to_string(record.list().version()));
      break;
    case v1::OutboxRecord::kSegmentChange:
      headers->add("content-type", json ? "application/json"
                                        : "application/x-protobuf; messageType=streamrec.v1.SegmentChange");
      headers->add("schema-version", kSchemaVersion);
      headers->add("model-version", std::to_string(record.segment_change().model_version()));
      break;
    case v1::OutboxRecord::kDeadLetter: {
      const v1::DeadLetter& d = record.dead_letter();
      headers->add("error", d.error());
      headers->add("error-reason", d.reason());
      headers->add("source-topic", d.source());
      headers->add("source-partition", std::to_string(d.partition()));
      headers->add("source-offset", std::to_string(d.offset()));
      break;
    }
    case v1::OutboxRecord::kChangelogState:
    case v1::OutboxRecord::kFitSample:
      // The store's encoding: a format-version byte, then the protobuf.
      headers->add("content-type", "application/x-streamrec-state; messageType=streamrec.v1.CustomerState");
      headers->add("schema-version", kSchemaVersion);
      break;
    case v1::OutboxRecord::kChangelogList:
      headers->add("content-type", "application/x-streamrec-state; messageType=streamrec.v1.RecommendationList");
      headers->add("schema-version", kSchemaVersion);
      break;
    case v1::OutboxRecord::kChangelogPosition:
      headers->add("content-type", "application/x-streamrec-state; messageType=streamrec.v1.SourcePosition");
      headers->add("schema-version", kSchemaVersion);
      break;
    case v1::OutboxRecord::kChangelogItem:
    case v1::OutboxRecord::kSharedItemStats:
      headers->add("content-type", "application/x-streamrec-state; messageType=streamrec.v1.ItemStats");
      headers->add("schema-version", kSchemaVersion);
      break;
    case v1::OutboxRecord::PAYLOAD_NOT_SET:
      break;
  }
  return headers;
}

// The outputs, which wait for the changelog records before them: lists, segment changes, dead
// letters. (Shared item statistics are neither output nor changelog: they never wait.)
bool IsOutput(const v1::OutboxRecord& record) {
  switch (record.payload_case()) {
    case v1::OutboxRecord::kList:
    case v1::OutboxRecord::kSegmentChange:
    case v1::OutboxRecord::kDeadLetter:
      return true;
    default:
      return false;
  }
}

}  // namespace

OutboxPublisher::OutboxPublisher(StateStore* store, const KafkaConfig& config,
                                 std::shared_ptr<Logger> logger, size_t max_queued)
    : store_(store), config_(config), logger_(std::move(logger)), max_queued_(max_queued) {}

void OutboxPublisher::Enqueue(std::vector<OutboxEntry> entries) {
  for (OutboxEntry& entry : entries) {
    PartitionState& state = partitions_[entry.partition];
    if (entry.sequence < state.cursor) continue;  // produced already, read from the store
    if (!state.queue.empty() && entry.sequence <= state.queue.back().sequence) {
      // Out of order: the queue cannot be trusted to be in sequence order; the store can.
      queued_ -= state.queue.size();
      state.queue.clear();
      state.dirty = true;
      continue;
    }
    if (queued_ >= max_queued_) {
      state.dirty = true;  // in the store; read when its turn comes
      continue;
    }
    state.queue.push_back(std::move(entry));
    ++queued_;
  }
}

void OutboxPublisher::SetOwned(uint32_t partition, bool owned) {
  if (!owned) {
    owned_.erase(partition);
    return;
  }
  owned_.insert(partition);
  partitions_[partition].dirty = true;  // whatever was held goes out now
}

Status OutboxPublisher::DropPartition(uint32_t partition) {
  WriteSet drop;
  drop.DeleteRange(Column::kOutbox, PartitionPrefix(partition), PartitionPrefix(partition + 1));
  STREAMREC_RETURN_IF_ERROR(store_->Write(drop));
  auto it = partitions_.find(partition);
  if (it != partitions_.end()) {
    queued_ -= it->second.queue.size();
    partitions_.erase(it);
  }
  return Status::OK();
}

Status OutboxPublisher::Recover() {
  // Partition prefixes present in the outbox: jump from one prefix to the next.
  uint32_t next = 0;
  size_t partitions = 0;
  while (true) {
    bool found = false;
    uint32_t partition = 0;
    STREAMREC_RETURN_IF_ERROR(store_->ScanFrom(
        Column::kOutbox, "", PartitionPrefix(next), [&](std::string_view key, std::string_view) {
          if (key.size() < 4) return true;
          partition = (static_cast<uint32_t>(static_cast<unsigned char>(key[0])) << 24) |
                      (static_cast<uint32_t>(static_cast<unsigned char>(key[1])) << 16) |
                      (static_cast<uint32_t>(static_cast<unsigned char>(key[2])) << 8) |
                      static_cast<uint32_t>(static_cast<unsigned char>(key[3]));
          found = true;
          return false;
        }));
    if (!found) break;
    partitions_[partition].dirty = true;
    ++partitions;
    STREAMREC_RETURN_IF_ERROR(store_->Scan(Column::kOutbox, PartitionPrefix(partition),
                                           [&](std::string_view, std::string_view) {
                                             ++recovered_;
                                             return true;
                                           }));
    if (partition == UINT32_MAX) break;
    next = partition + 1;
  }
  if (partitions > 0) {
    logger_->Info("outbox: " + std::to_string(recovered_) + " records in " +
                  std::to_string(partitions) +
                  " partition(s) not yet acknowledged; publishing them again");
  }
  return Status::OK();
}

Status OutboxPublisher::ProduceNext(uint32_t partition, PartitionState* state, uint64_t sequence,
                                    v1::OutboxRecord* record_ptr, size_t* budget,
                                    bool* queue_full) {
  if (Acknowledged(*state, sequence)) {
    // Written before a failed delivery rewound the cursor: not again.
    state->cursor = sequence + 1;
    return Status::OK();
  }
  if (state->changelog_in_flight > 0 && IsOutput(*record_ptr)) {
    state->waiting = true;  // dr_cb lifts it with the last changelog record's report
    ++barrier_waits_;
    return Status::OK();
  }
  // The record moves into the message's opaque (for on_delivered); back when not produced.
  const bool changelog = IsChangelogRecord(*record_ptr);
  auto pending =
      std::make_unique<Pending>(Pending{partition, sequence, std::move(*record_ptr), changelog});
  const v1::OutboxRecord& record = pending->record;
  const std::string* topic = &config_.output_topic;
  // Changelog records go to the partition of the input partition whose state they carry (the
  // outbox partition); the others are partitioned by key.
  int32_t kafka_partition = RdKafka::Topic::PARTITION_UA;
  std::string value;
  const bool json = config_.output_format == "json";
  switch (record.payload_case()) {
    case v1::OutboxRecord::kList:
      value = json ? RecommendationListToJson(record.list()) : record.list().SerializeAsString();
      break;
    case v1::OutboxRecord::kSegmentChange:
      topic = &config_.segment_change_topic;
      value = json ? SegmentChangeToJson(record.segment_change())
                   : record.segment_change().SerializeAsString();
      break;
    case v1::OutboxRecord::kDeadLetter:
      topic = &config_.dead_letter_topic;
      value = record.dead_letter().payload();
      break;
    case v1::OutboxRecord::kChangelogState:
      topic = &config_.changelog_topic;
      kafka_partition = static_cast<int32_t>(partition);
      value = record.changelog_state();
      break;
    case v1::OutboxRecord::kChangelogList:
      topic = &config_.changelog_topic;
      kafka_partition = static_cast<int32_t>(partition);
      value = record.changelog_list();
      break;
    case v1::OutboxRecord::kChangelogPosition:
      topic = &config_.changelog_topic;
      kafka_partition = static_cast<int32_t>(partition);
      value = EncodeState(record.changelog_position());
      break;
    case v1::OutboxRecord::kChangelogItem:
      topic = &config_.changelog_topic;
      kafka_partition = static_cast<int32_t>(partition);
      value = record.changelog_item();
      break;
    case v1::OutboxRecord::kSharedItemStats:
      topic = &config_.item_stats_topic;
      kafka_partition = static_cast<int32_t>(partition);
      value = record.shared_item_stats();
      break;
    case v1::OutboxRecord::kFitSample:
      topic = &config_.sample_topic;
      kafka_partition = static_cast<int32_t>(partition);
      value = record.fit_sample();
      break;
    case v1::OutboxRecord::PAYLOAD_NOT_SET:
      return Status::Corruption("outbox record without payload at partition " +
                                std::to_string(partition) + " sequence " + std::to_string(sequence));
  }
  const std::string& key =
      record.payload_case() == v1::OutboxRecord::kDeadLetter ? record.dead_letter().key() : record.key();
  RdKafka::Headers* headers = MakeHeaders(record, config_.output_format);
  RdKafka::ErrorCode err = producer_->produce(
      *topic, kafka_partition, RdKafka::Producer::RK_MSG_COPY,
      value.empty() ? nullptr : value.data(), value.size(), key.empty() ? nullptr : key.data(),
      key.size(), 0, headers, pending.get());
  if (err != RdKafka::ERR_NO_ERROR) {
    delete headers;
    *record_ptr = std::move(pending->record);
    if (err == RdKafka::ERR__QUEUE_FULL) {
      *queue_full = true;
      return Status::OK();
    }
    if (err == RdKafka::ERR__FATAL) {
      return Status::IOError("produce to '" + *topic + "': " + RdKafka::err2str(err));
    }
    // Refused at once (the producer remembers a broker's answer for the topic: authorization,
    // unknown topic or partition, a record too large, ...): like a failed delivery, the record
    // stays where it is in the outbox and is produced again, after a pause, until the cause is
    // fixed. Counted and logged; nothing is skipped.
    ++delivery_errors_;
    if (delivery_errors_ <= 10 || delivery_errors_ % 1000 == 0) {
      logger_->Warn("produce to '" + *topic + "' refused (" + RdKafka::err2str(err) +
                    ") for outbox partition " + std::to_string(partition) + " sequence " +
                    std::to_string(sequence) + "; it will be produced again");
    }
    refused_until_ = std::chrono::steady_clock::now() + kRefusedPause;
    *queue_full = true;
    return Status::OK();
  }
  pending.release();  // owned by the message until its delivery report
  ++in_flight_;
  if (changelog) ++state->changelog_in_flight;
  // The record's place in the acknowledgement window (it is there already when produced again).
  if (sequence >= state->acked_base && sequence - state->acked_base >= state->acked.size()) {
    state->acked.resize(sequence - state->acked_base + 1, 0);
  }
  state->cursor = sequence + 1;
  --*budget;
  return Status::OK();
}

void OutboxPublisher::MarkAcknowledged(PartitionState* state, uint64_t begin, uint64_t end) {
  begin = std::max(begin, state->acked_base);
  if (begin >= end) return;
  if (state->acked.empty() && begin == state->acked_base) {
    state->acked_base = end;  // e.g. a scan skipping what is no longer in the outbox
    return;
  }
  const uint64_t last = end - state->acked_base;
  if (state->acked.size() < last) state->acked.resize(last, 0);
  for (uint64_t i = begin - state->acked_base; i < last; ++i) state->acked[i] = 1;
  while (!state->acked.empty() && state->acked.front() != 0) {
    state->acked.pop_front();
    ++state->acked_base;
  }
}

bool OutboxPublisher::Acknowledged(const PartitionState& state, uint64_t sequence) {
  if (sequence < state.acked_base) return true;
  const uint64_t i = sequence - state.acked_base;
  return i < state.acked.size() && state.acked[i] != 0;
}

void OutboxPublisher::dr_cb(RdKafka::Message& message) {
  std::unique_ptr<Pending> pending(static_cast<Pending*>(message.msg_opaque()));
  if (!pending) return;
  --in_flight_;
  PartitionState& state = partitions_[pending->partition];
  if (pending->changelog && state.changelog_in_flight > 0 && --state.changelog_in_flight == 0) {
    state.waiting = false;
  }
  if (message.err() == RdKafka::ERR_NO_ERROR) {
    ++delivered_;
    MarkAcknowledged(&state, pending->sequence, pending->sequence + 1);
    if (pending->record.payload_case() == v1::OutboxRecord::kChangelogPosition &&
        message.offset() >= 0) {
      // Positions are acknowledged in changelog order (one topic partition, one producer).
      state.positions.emplace_back(pending->record.changelog_position().outbox_seq(),
                                   message.offset() + 1);
    }
    if (on_delivered_) on_delivered_(pending->record);
    return;
  }
  // Not written: produce it again (and whatever followed it that is still in the outbox).
  state.cursor = std::min(state.cursor, pending->sequence);
  state.dirty = true;
  const RdKafka::ErrorCode err = message.err();
  if (err == RdKafka::ERR__PURGE_QUEUE || err == RdKafka::ERR__PURGE_INFLIGHT) return;  // DropInFlight
  ++delivery_errors_;
  if (delivery_errors_ <= 10 || delivery_errors_ % 1000 == 0) {
    logger_->Warn("delivery failed (" + message.errstr() + ") for outbox partition " +
                  std::to_string(pending->partition) + " sequence " +
                  std::to_string(pending->sequence) + "; it will be produced again");
  }
}

void OutboxPublisher::MarkPublished(uint32_t partition, PartitionState* state) {
  int64_t mark = -1;
  while (!state->positions.empty() && state->positions.front().first <= state->acked_base) {
    mark = state->positions.front().second;  // the batch is acknowledged whole, lists included
    state->positions.pop_front();
  }
  if (mark <= state->published_mark) return;
  const std::string value = std::to_string(mark);
  const RdKafka::ErrorCode err = producer_->produce(
      config_.changelog_topic, static_cast<int32_t>(partition), RdKafka::Producer::RK_MSG_COPY,
      const_cast<char*>(value.data()), value.size(), kChangelogPublishedKey.data(),
      kChangelogPublishedKey.size(), 0, nullptr);
  if (err != RdKafka::ERR_NO_ERROR) return;  // the next batch's mark says more
  state->published_mark = mark;
  ++published_marks_;
}

Status OutboxPublisher::ApplyDeletes(bool retry_now) {
  // One range per partition: everything below acked_base is acknowledged or already gone.
  WriteSet deletes;
  for (const auto& [partition, state] : partitions_) {
    if (state.acked_base > state.deleted_to) {
      deletes.DeleteRange(Column::kOutbox, OutboxKey(partition, state.deleted_to),
                          OutboxKey(partition, state.acked_base));
    }
  }
  if (deletes.empty()) return Status::OK();
  const auto now = std::chrono::steady_clock::now();
  if (!retry_now && now < deletes_retry_at_) return Status::OK();
  Status s = store_->Write(deletes);
  if (!s.ok()) {
    // Publishing goes on (it only reads); the deletes wait for the store.
    ++delete_errors_;
    deletes_retry_at_ = now + kDeleteRetryPause;
    if (delete_errors_ <= 5 || delete_errors_ % 100 == 0) {
      logger_->Warn("deleting acknowledged outbox records failed (" + s.ToString() +
                    "); retried every second until the store takes writes again");
    }
    return Status::OK();
  }
  for (auto& [partition, state] : partitions_) state.deleted_to = state.acked_base;
  return Status::OK();
}

bool OutboxPublisher::HasPending() const {
  for (const auto& [partition, state] : partitions_) {
    if (Held(partition)) continue;
    if (state.dirty || !state.queue.empty()) return true;
  }
  return false;
}

Status OutboxPublisher::ProduceFromStore(uint32_t partition, PartitionState* state, uint64_t end,
                                         size_t* budget, bool* queue_full, bool* drained) {
  *drained = false;
  const uint64_t limit = static_cast<uint64_t>(config_.max_in_flight);
  const size_t want = static_cast<size_t>(std::min<uint64_t>(*budget, limit - in_flight_));
  Status decode_status;
  std::vector<std::pair<uint64_t, v1::OutboxRecord>> batch;
  STREAMREC_RETURN_IF_ERROR(store_->ScanFrom(
      Column::kOutbox, PartitionPrefix(partition), OutboxKey(partition, state->cursor),
      [&](std::string_view key, std::string_view value) {
        const uint64_t sequence = OutboxSequence(key);
        if (sequence >= end) return false;
        v1::OutboxRecord record;
        decode_status = DecodeState(value, &record);
        if (!decode_status.ok()) return false;
        batch.emplace_back(sequence, std::move(record));
        return batch.size() < want;
      }));
  STREAMREC_RETURN_IF_ERROR(decode_status);
  read_from_store_ += batch.size();
  for (auto& [sequence, record] : batch) {
    // Sequences the scan stepped over are not in the outbox (deleted before a restart).
    MarkAcknowledged(state, state->cursor, sequence);
    state->cursor = sequence;
    STREAMREC_RETURN_IF_ERROR(ProduceNext(partition, state, sequence, &record, budget, queue_full));
    if (*queue_full || state->waiting) return Status::OK();
  }
  *drained = batch.size() < want;
  return Status::OK();
}

Status OutboxPublisher::PumpPartition(uint32_t partition, PartitionState* state, size_t* budget,
                                      bool* queue_full) {
  if (Held(partition)) return Status::OK();
  const uint64_t limit = static_cast<uint64_t>(config_.max_in_flight);
  std::deque<OutboxEntry>& queue = state->queue;
  while (*budget > 0 && in_flight_ < limit && !*queue_full && !state->waiting) {
    while (!queue.empty() && queue.front().sequence < state->cursor) {  // read from the store
      queue.pop_front();
      --queued_;
    }
    if (!queue.empty() && queue.front().sequence == state->cursor) {
      STREAMREC_RETURN_IF_ERROR(
          ProduceNext(partition, state, state->cursor, &queue.front().record, budget, queue_full));
      if (*queue_full || state->waiting) break;
      queue.pop_front();
      --queued_;
      continue;
    }
    if (queue.empty() && !state->dirty) break;  // nothing known to be pending
    // The store, from the cursor up to the first handed-over record (or to its end).
    const uint64_t end = queue.empty() ? UINT64_MAX : queue.front().sequence;
    bool drained = false;
    STREAMREC_RETURN_IF_ERROR(ProduceFromStore(partition, state, end, budget, queue_full, &drained));
    if (!drained) continue;
    if (queue.empty()) {
      state->dirty = false;  // produced everything up to now
    } else {
      MarkAcknowledged(state, state->cursor, end);  // not in the outbox
      state->cursor = end;
    }
  }
  return Status::OK();
}

Status OutboxPublisher::Pump(size_t budget) {
  producer_->poll(0);
  const uint64_t limit = static_cast<uint64_t>(config_.max_in_flight);
  bool queue_full = std::chrono::steady_clock::now() < refused_until_;
  for (auto& [partition, state] : partitions_) {
    if (queue_full || budget == 0 || in_flight_ >= limit) break;
    STREAMREC_RETURN_IF_ERROR(PumpPartition(partition, &state, &budget, &queue_full));
  }
  producer_->poll(0);
  for (auto& [partition, state] : partitions_) {
    // (Not for a partition gone elsewhere: its next owner writes the changelog now.)
    if (!state.positions.empty() && !Held(partition)) MarkPublished(partition, &state);
  }
  return ApplyDeletes();
}

Status OutboxPublisher::Flush(int timeout_ms) {
  // Bounded by the number of rounds, each waiting at most 100 ms for delivery reports.
  for (int waited = 0; waited <= timeout_ms; waited += 100) {
    STREAMREC_RETURN_IF_ERROR(Pump());
    if (!HasPending() && in_flight_ == 0) return ApplyDeletes(/*retry_now=*/true);
    producer_->poll(100);
    STREAMREC_RETURN_IF_ERROR(ApplyDeletes());
  }
  return Status::Busy(std::to_string(in_flight_) + " output record(s) still in flight after " +
                      std::to_string(timeout_ms) + " ms; they stay in the outbox");
}

Status OutboxPublisher::DropInFlight(int timeout_ms) {
  if (producer_ == nullptr) return Status::OK();
  const RdKafka::ErrorCode err =
      producer_->purge(RdKafka::Producer::PURGE_QUEUE | RdKafka::Producer::PURGE_INFLIGHT);
  if (err != RdKafka::ERR_NO_ERROR) {
    return Status::IOError("purging the producer's queues: " + RdKafka::err2str(err));
  }
  // The reports of the purged messages are queued by now; a report the broker's answer
  // brought just before the purge may still be on its way. At most 100 ms per wait.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (in_flight_ > 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0) break;
    producer_->poll(static_cast<int>(std::min<int64_t>(left, 100)));
  }
  if (in_flight_ > 0) {
    return Status::Busy(std::to_string(in_flight_) + " output record(s) without a delivery report " +
                        std::to_string(timeout_ms) + " ms after the purge");
  }
  return Status::OK();
}

}  // namespace streamrec
