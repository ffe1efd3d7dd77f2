#include "kafka/outbox_publisher.h"

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
    case v1::OutboxRecord::PAYLOAD_NOT_SET:
      break;
  }
  return headers;
}

}  // namespace

OutboxPublisher::OutboxPublisher(StateStore* store, const KafkaConfig& config,
                                 std::shared_ptr<Logger> logger)
    : store_(store), config_(config), logger_(std::move(logger)) {}

Status OutboxPublisher::Recover() {
  // Partition prefixes present in the outbox: jump from one prefix to the next.
  uint32_t next = 0;
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
    dirty_.insert(partition);
    cursor_.emplace(partition, 0);
    STREAMREC_RETURN_IF_ERROR(store_->Scan(Column::kOutbox, PartitionPrefix(partition),
                                           [&](std::string_view, std::string_view) {
                                             ++recovered_;
                                             return true;
                                           }));
    if (partition == UINT32_MAX) break;
    next = partition + 1;
  }
  if (!dirty_.empty()) {
    logger_->Info("outbox: " + std::to_string(recovered_) + " records in " +
                  std::to_string(dirty_.size()) +
                  " partition(s) not yet acknowledged; publishing them again");
  }
  return Status::OK();
}

Status OutboxPublisher::ProduceRecord(uint32_t partition, uint64_t sequence,
                                      v1::OutboxRecord record, bool* queue_full) {
  const std::string* topic = &config_.output_topic;
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
    case v1::OutboxRecord::PAYLOAD_NOT_SET:
      return Status::Corruption("outbox record without payload at partition " +
                                std::to_string(partition) + " sequence " + std::to_string(sequence));
  }
  const std::string& key =
      record.payload_case() == v1::OutboxRecord::kDeadLetter ? record.dead_letter().key() : record.key();
  RdKafka::Headers* headers = MakeHeaders(record, config_.output_format);
  auto* pending = new Pending{partition, sequence, std::move(record)};
  RdKafka::ErrorCode err = producer_->produce(
      *topic, RdKafka::Topic::PARTITION_UA, RdKafka::Producer::RK_MSG_COPY,
      value.empty() ? nullptr : value.data(), value.size(), key.empty() ? nullptr : key.data(),
      key.size(), 0, headers, pending);
  if (err != RdKafka::ERR_NO_ERROR) {
    delete headers;
    delete pending;
    if (err == RdKafka::ERR__QUEUE_FULL) {
      *queue_full = true;
      return Status::OK();
    }
    return Status::IOError("produce to '" + *topic + "': " + RdKafka::err2str(err));
  }
  ++in_flight_;
  return Status::OK();
}

void OutboxPublisher::dr_cb(RdKafka::Message& message) {
  std::unique_ptr<Pending> pending(static_cast<Pending*>(message.msg_opaque()));
  if (!pending) return;
  --in_flight_;
  if (message.err() == RdKafka::ERR_NO_ERROR) {
    ++delivered_;
    deletes_.Delete(Column::kOutbox, OutboxKey(pending->partition, pending->sequence));
    if (on_delivered_) on_delivered_(pending->record);
    return;
  }
  // Not written: produce it again (and whatever followed it that is still in the outbox).
  ++delivery_errors_;
  if (delivery_errors_ <= 10 || delivery_errors_ % 1000 == 0) {
    logger_->Warn("delivery failed (" + message.errstr() + ") for outbox partition " +
                  std::to_string(pending->partition) + " sequence " +
                  std::to_string(pending->sequence) + "; it will be produced again");
  }
  auto it = cursor_.find(pending->partition);
  if (it != cursor_.end() && it->second > pending->sequence) it->second = pending->sequence;
  dirty_.insert(pending->partition);
}

Status OutboxPublisher::ApplyDeletes() {
  if (deletes_.empty()) return Status::OK();
  Status s = store_->Write(deletes_);
  deletes_.Clear();
  return s;
}

Status OutboxPublisher::Pump(size_t budget) {
  producer_->poll(0);
  STREAMREC_RETURN_IF_ERROR(ApplyDeletes());
  const uint64_t limit = static_cast<uint64_t>(config_.max_in_flight);
  std::vector<uint32_t> partitions(dirty_.begin(), dirty_.end());
  bool queue_full = false;
  for (uint32_t partition : partitions) {
    if (queue_full || budget == 0 || in_flight_ >= limit) break;
    uint64_t& cursor = cursor_[partition];
    size_t want = std::min<uint64_t>(budget, limit - in_flight_);
    size_t seen = 0;
    Status produce_status;
    std::vector<std::pair<uint64_t, v1::OutboxRecord>> batch;
    STREAMREC_RETURN_IF_ERROR(store_->ScanFrom(
        Column::kOutbox, PartitionPrefix(partition), OutboxKey(partition, cursor),
        [&](std::string_view key, std::string_view value) {
          v1::OutboxRecord record;
          produce_status = DecodeState(value, &record);
          if (!produce_status.ok()) return false;
          batch.emplace_back(OutboxSequence(key), std::move(record));
          return ++seen < want;
        }));
    STREAMREC_RETURN_IF_ERROR(produce_status);
    for (auto& [sequence, record] : batch) {
      STREAMREC_RETURN_IF_ERROR(ProduceRecord(partition, sequence, std::move(record), &queue_full));
      if (queue_full) break;
      cursor = sequence + 1;
      --budget;
    }
    if (!queue_full && seen < want) dirty_.erase(partition);  // drained up to now
  }
  producer_->poll(0);
  return ApplyDeletes();
}

Status OutboxPublisher::Flush(int timeout_ms) {
  // Bounded by the number of rounds, each waiting at most 100 ms for delivery reports.
  for (int waited = 0; waited <= timeout_ms; waited += 100) {
    STREAMREC_RETURN_IF_ERROR(Pump());
    if (dirty_.empty() && in_flight_ == 0) return Status::OK();
    producer_->poll(100);
    STREAMREC_RETURN_IF_ERROR(ApplyDeletes());
  }
  return Status::Busy(std::to_string(in_flight_) + " output record(s) still in flight after " +
                      std::to_string(timeout_ms) + " ms; they stay in the outbox");
}

}  // namespace streamrec
