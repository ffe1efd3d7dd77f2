#include "kafka/cooccurrence_exchange.h"

#include <librdkafka/rdkafkacpp.h>

#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <utility>

#include "kafka/kafka_conf.h"
#include "kafka/topic_feed.h"
#include "streamrec/recommend_index.h"

namespace streamrec {

namespace {

class CooccurrenceExchangeImpl : public CooccurrenceExchange, public RdKafka::DeliveryReportCb {
 public:
  CooccurrenceExchangeImpl(const KafkaConfig& kafka, std::shared_ptr<Logger> log)
      : topic_(kafka.cooccurrence_topic), log_(std::move(log)) {}

  ~CooccurrenceExchangeImpl() override {
    feed_.reset();  // its thread calls OnRecord
    producer_.reset();
  }

  Status Start(const KafkaConfig& kafka) {
    auto conf = MakeKafkaConf(ProducerProperties(kafka, "streamrec-cooccurrence"),
                              "co-occurrence producer");
    if (!conf.ok()) return conf.status();
    std::string error;
    if ((*conf)->set("dr_cb", static_cast<RdKafka::DeliveryReportCb*>(this), error) !=
        RdKafka::Conf::CONF_OK) {
      return Status::InvalidArgument("co-occurrence producer: " + error);
    }
    producer_.reset(RdKafka::Producer::create(conf->get(), error));
    if (!producer_) return Status::InvalidArgument("cannot create the co-occurrence producer: " + error);
    auto feed = TopicFeed::Start(
        kafka, topic_, "co-occurrence topic",
        [this](uint32_t p, std::string_view key, const std::string_view* value) {
          return OnRecord(p, key, value);
        },
        log_);
    if (!feed.ok()) return feed.status();
    feed_ = std::move(feed).value();
    return Status::OK();
  }

  size_t Drain(const std::function<void(uint32_t, const std::string&, const std::string*,
                                        const CooccurrenceRow*)>& apply) override {
    std::map<std::pair<uint32_t, std::string>, std::optional<Row>> batch;
    {
      std::lock_guard<std::mutex> lock(mu_);
      batch.swap(pending_);
    }
    for (const auto& [where, row] : batch) {
      apply(where.first, where.second, row.has_value() ? &row->encoded : nullptr,
            row.has_value() ? &row->decoded : nullptr);
    }
    return batch.size();
  }

  void Publish(const std::vector<Pipeline::CooccurrenceUpdate>& rows) override {
    for (const auto& row : rows) {
      // The opaque carries which row a delivery report is about.
      auto* where = new std::pair<uint32_t, std::string>(row.partition, row.item_id);
      char* value = row.encoded.has_value() ? const_cast<char*>(row.encoded->data()) : nullptr;
      const size_t size = row.encoded.has_value() ? row.encoded->size() : 0;
      RdKafka::ErrorCode err = producer_->produce(
          topic_, static_cast<int32_t>(row.partition), RdKafka::Producer::RK_MSG_COPY, value,
          size, row.item_id.data(), row.item_id.size(), 0, nullptr, where);
      if (err != RdKafka::ERR_NO_ERROR) {
        Failed(*where, RdKafka::err2str(err));
        delete where;
      }
    }
  }

  void Poll(const std::function<void(uint32_t, const std::string&)>& failed) override {
    producer_->poll(0);
    std::vector<std::pair<uint32_t, std::string>> rows;
    rows.swap(failed_rows_);
    for (const auto& [p, item] : rows) failed(p, item);
  }

  void Flush(int timeout_ms) override { producer_->flush(timeout_ms); }

  uint64_t published() const override { return published_; }
  uint64_t failed() const override { return failed_; }
  uint64_t records() const override { return feed_->records(); }
  uint64_t refused() const override { return feed_->refused(); }
  uint64_t lag() const override { return feed_->lag(); }

  // Called by poll() and flush() on the caller's thread.
  void dr_cb(RdKafka::Message& message) override {
    std::unique_ptr<std::pair<uint32_t, std::string>> where(
        static_cast<std::pair<uint32_t, std::string>*>(message.msg_opaque()));
    if (where == nullptr) return;
    if (message.err() == RdKafka::ERR_NO_ERROR) {
      ++published_;
    } else {
      Failed(*where, message.errstr());
    }
  }

 private:
  void Failed(const std::pair<uint32_t, std::string>& where, const std::string& error) {
    if (failed_++ % 1000 == 0) {
      log_->Warn("co-occurrence row of partition " + std::to_string(where.first) + " item '" +
                 where.second + "' not published to '" + topic_ + "' (" + error +
                 "): published again with the next rows (" + std::to_string(failed_) +
                 " so far)");
    }
    failed_rows_.push_back(where);
  }

  // The feed's thread.
  Status OnRecord(uint32_t p, std::string_view key, const std::string_view* value) {
    if (key.empty()) return Status::InvalidArgument("a record without a key");
    std::optional<Row> row;
    if (value != nullptr) {
      row.emplace();
      STREAMREC_RETURN_IF_ERROR(DecodeCooccurrenceRow(key, *value, &row->decoded));
      row->encoded = std::string(*value);
    }
    std::lock_guard<std::mutex> lock(mu_);
    pending_[{p, std::string(key)}] = std::move(row);
    return Status::OK();
  }

  // A row as read, and decoded (a tombstone: none).
  struct Row {
    std::string encoded;
    CooccurrenceRow decoded;
  };

  const std::string topic_;
  std::shared_ptr<Logger> log_;
  std::unique_ptr<RdKafka::Producer> producer_;
  std::vector<std::pair<uint32_t, std::string>> failed_rows_;  // caller's thread
  std::atomic<uint64_t> published_{0}, failed_{0};
  std::mutex mu_;
  std::map<std::pair<uint32_t, std::string>, std::optional<Row>> pending_;  // guarded
  std::unique_ptr<TopicFeed> feed_;  // last: its thread stops first
};

}  // namespace

StatusOr<std::unique_ptr<CooccurrenceExchange>> CooccurrenceExchange::Start(
    const KafkaConfig& kafka, std::shared_ptr<Logger> log) {
  if (kafka.cooccurrence_topic.empty()) {
    return Status::InvalidArgument("kafka.cooccurrence_topic is empty");
  }
  auto exchange = std::make_unique<CooccurrenceExchangeImpl>(kafka, std::move(log));
  STREAMREC_RETURN_IF_ERROR(exchange->Start(kafka));
  return std::unique_ptr<CooccurrenceExchange>(std::move(exchange));
}

}  // namespace streamrec
