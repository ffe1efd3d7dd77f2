#include "kafka/item_stats_feed.h"

#include <librdkafka/rdkafkacpp.h>

#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "kafka/kafka_conf.h"

namespace streamrec {

namespace {

constexpr int kMetadataTimeoutMs = 5000;

class ItemStatsFeedImpl : public ItemStatsFeed {
 public:
  ItemStatsFeedImpl(std::string topic, uint32_t partitions, std::shared_ptr<Logger> log,
                    std::unique_ptr<RdKafka::KafkaConsumer> consumer)
      : topic_(std::move(topic)),
        partitions_(partitions),
        log_(std::move(log)),
        consumer_(std::move(consumer)),
        next_(partitions) {
    for (auto& n : next_) n.store(0);
    thread_ = std::thread([this] { Loop(); });
  }
  ~ItemStatsFeedImpl() override {
    stop_.store(true);
    thread_.join();
    consumer_->close();
  }

  size_t Drain(const std::function<void(uint32_t, const ItemStats&)>& apply) override {
    std::map<std::pair<uint32_t, std::string>, ItemStats> batch;
    {
      std::lock_guard<std::mutex> lock(mu_);
      batch.swap(pending_);
    }
    for (const auto& [where, stats] : batch) apply(where.first, stats);
    return batch.size();
  }
  uint64_t records() const override { return records_.load(); }
  uint64_t refused() const override { return refused_.load(); }
  uint32_t partitions() const override { return partitions_; }
  uint64_t lag() const override {
    uint64_t lag = 0;
    for (uint32_t p = 0; p < partitions_; ++p) {
      int64_t low = 0, high = 0;
      if (consumer_->get_watermark_offsets(topic_, static_cast<int32_t>(p), &low, &high) !=
              RdKafka::ERR_NO_ERROR ||
          high < 0) {
        continue;
      }
      const uint64_t next = std::max<uint64_t>(next_[p].load(), static_cast<uint64_t>(low));
      if (static_cast<uint64_t>(high) > next) lag += static_cast<uint64_t>(high) - next;
    }
    return lag;
  }

 private:
  void Loop() {
    uint64_t errors = 0;
    ItemStats stats;
    while (!stop_.load()) {
      std::unique_ptr<RdKafka::Message> msg(consumer_->consume(100));
      if (msg->err() == RdKafka::ERR__TIMED_OUT || msg->err() == RdKafka::ERR__PARTITION_EOF) {
        continue;
      }
      if (msg->err() != RdKafka::ERR_NO_ERROR) {
        if (++errors <= 10 || errors % 1000 == 0) {
          log_->Warn("item-stats topic '" + topic_ + "': " + msg->errstr());
        }
        continue;
      }
      ++records_;
      const uint32_t p = static_cast<uint32_t>(msg->partition());
      if (p < partitions_) next_[p].store(static_cast<uint64_t>(msg->offset()) + 1);
      // Names the record in a warning (built only for one).
      auto where = [&] {
        return "item-stats topic '" + topic_ + "' partition " + std::to_string(p) + " offset " +
               std::to_string(msg->offset());
      };
      if (msg->key() == nullptr || msg->key()->empty() || msg->payload() == nullptr) {
        // A tombstone or a record without a key: nothing this build writes.
        if (++refused_ <= 10) log_->Warn(where() + ": a record without key or value, skipped");
        continue;
      }
      Status s = DecodeState(
          std::string_view(static_cast<const char*>(msg->payload()), msg->len()), &stats);
      if (s.ok() && stats.item_id() != *msg->key()) {
        s = Status::Corruption("key '" + *msg->key() + "' holds the statistics of item '" +
                               stats.item_id() + "'");
      }
      if (!s.ok()) {
        const uint64_t refused = ++refused_;
        if (refused <= 10 || refused % 1000 == 0) log_->Warn(where() + ": " + s.message() + "; skipped");
        continue;
      }
      std::lock_guard<std::mutex> lock(mu_);
      pending_[{p, stats.item_id()}] = stats;
    }
  }

  const std::string topic_;
  const uint32_t partitions_;
  std::shared_ptr<Logger> log_;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  std::vector<std::atomic<uint64_t>> next_;  // per partition: the next offset to read
  std::mutex mu_;
  std::map<std::pair<uint32_t, std::string>, ItemStats> pending_;  // guarded by mu_
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> records_{0}, refused_{0};
  std::thread thread_;
};

}  // namespace

StatusOr<std::unique_ptr<ItemStatsFeed>> ItemStatsFeed::Start(const KafkaConfig& kafka,
                                                              std::shared_ptr<Logger> log) {
  if (kafka.item_stats_topic.empty()) {
    return Status::InvalidArgument("kafka.item_stats_topic is empty");
  }
  auto created = NewKafkaConsumer(
      AssignOnlyConsumerProperties(kafka, "streamrec-item-stats", "-item-stats"), "item-stats feed");
  if (!created.ok()) return created.status();
  std::unique_ptr<RdKafka::KafkaConsumer> consumer = std::move(created).value();
  auto partitions = TopicPartitionCount(consumer.get(), kafka.item_stats_topic,
                                        kMetadataTimeoutMs, "item-stats topic");
  if (!partitions.ok()) return partitions.status();
  std::vector<RdKafka::TopicPartition*> assignment;
  for (uint32_t p = 0; p < *partitions; ++p) {
    assignment.push_back(RdKafka::TopicPartition::create(
        kafka.item_stats_topic, static_cast<int32_t>(p), RdKafka::Topic::OFFSET_BEGINNING));
  }
  RdKafka::ErrorCode err = consumer->assign(assignment);
  RdKafka::TopicPartition::destroy(assignment);
  if (err != RdKafka::ERR_NO_ERROR) {
    return Status::IOError("item-stats topic '" + kafka.item_stats_topic +
                           "': cannot assign: " + RdKafka::err2str(err));
  }
  return std::unique_ptr<ItemStatsFeed>(new ItemStatsFeedImpl(
      kafka.item_stats_topic, *partitions, std::move(log), std::move(consumer)));
}

}  // namespace streamrec
