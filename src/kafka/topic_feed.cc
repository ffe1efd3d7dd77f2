#include "kafka/topic_feed.h"

#include <librdkafka/rdkafkacpp.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <utility>
#include <vector>

#include "kafka/kafka_conf.h"

namespace streamrec {

namespace {

constexpr int kMetadataTimeoutMs = 5000;

class TopicFeedImpl : public TopicFeed {
 public:
  TopicFeedImpl(std::string topic, std::string what, uint32_t partitions, Handler handler,
                std::shared_ptr<Logger> log, std::unique_ptr<RdKafka::KafkaConsumer> consumer)
      : topic_(std::move(topic)),
        what_(std::move(what)),
        partitions_(partitions),
        handler_(std::move(handler)),
        log_(std::move(log)),
        consumer_(std::move(consumer)),
        next_(partitions) {
    for (auto& n : next_) n.store(0);
    thread_ = std::thread([this] { Loop(); });
  }
  ~TopicFeedImpl() override {
    stop_.store(true);
    thread_.join();
    consumer_->close();
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
    while (!stop_.load()) {
      std::unique_ptr<RdKafka::Message> msg(consumer_->consume(100));
      if (msg->err() == RdKafka::ERR__TIMED_OUT || msg->err() == RdKafka::ERR__PARTITION_EOF) {
        continue;
      }
      if (msg->err() != RdKafka::ERR_NO_ERROR) {
        if (++errors <= 10 || errors % 1000 == 0) {
          log_->Warn(what_ + " '" + topic_ + "': " + msg->errstr());
        }
        continue;
      }
      ++records_;
      const uint32_t p = static_cast<uint32_t>(msg->partition());
      if (p < partitions_) next_[p].store(static_cast<uint64_t>(msg->offset()) + 1);
      const std::string_view key =
          msg->key_pointer() != nullptr
              ? std::string_view(static_cast<const char*>(msg->key_pointer()), msg->key_len())
              : std::string_view();
      const std::string_view value(static_cast<const char*>(msg->payload()), msg->len());
      Status s = handler_(p, key, msg->payload() != nullptr ? &value : nullptr);
      if (!s.ok()) {
        const uint64_t refused = ++refused_;
        if (refused <= 10 || refused % 1000 == 0) {
          log_->Warn(what_ + " '" + topic_ + "' partition " + std::to_string(p) + " offset " +
                     std::to_string(msg->offset()) + ": " + s.message() + "; skipped");
        }
      }
    }
  }

  const std::string topic_;
  const std::string what_;
  const uint32_t partitions_;
  Handler handler_;
  std::shared_ptr<Logger> log_;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  std::vector<std::atomic<uint64_t>> next_;  // per partition: the next offset to read
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> records_{0}, refused_{0};
  std::thread thread_;
};

}  // namespace

StatusOr<std::unique_ptr<TopicFeed>> TopicFeed::Start(const KafkaConfig& kafka,
                                                      const std::string& topic,
                                                      const std::string& what, Handler handler,
                                                      std::shared_ptr<Logger> log) {
  if (topic.empty()) return Status::InvalidArgument(what + ": no topic configured");
  std::string suffix = what;
  std::replace(suffix.begin(), suffix.end(), ' ', '-');
  auto created = NewKafkaConsumer(
      AssignOnlyConsumerProperties(kafka, "streamrec-" + suffix, "-" + suffix), what + " feed");
  if (!created.ok()) return created.status();
  std::unique_ptr<RdKafka::KafkaConsumer> consumer = std::move(created).value();
  auto partitions = TopicPartitionCount(consumer.get(), topic, kMetadataTimeoutMs, what);
  if (!partitions.ok()) return partitions.status();
  std::vector<RdKafka::TopicPartition*> assignment;
  for (uint32_t p = 0; p < *partitions; ++p) {
    assignment.push_back(RdKafka::TopicPartition::create(topic, static_cast<int32_t>(p),
                                                         RdKafka::Topic::OFFSET_BEGINNING));
  }
  RdKafka::ErrorCode err = consumer->assign(assignment);
  RdKafka::TopicPartition::destroy(assignment);
  if (err != RdKafka::ERR_NO_ERROR) {
    return Status::IOError(what + " '" + topic + "': cannot assign: " + RdKafka::err2str(err));
  }
  return std::unique_ptr<TopicFeed>(new TopicFeedImpl(topic, what, *partitions, std::move(handler),
                                                      std::move(log), std::move(consumer)));
}

}  // namespace streamrec
