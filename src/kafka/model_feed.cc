#include "kafka/model_feed.h"

#include <librdkafka/rdkafkacpp.h>

#include <atomic>
#include <cstdlib>
#include <map>
#include <thread>
#include <utility>
#include <vector>

#include "kafka/kafka_conf.h"
#include "streamrec/features.h"

namespace streamrec {

namespace {

class ModelFeedImpl : public ModelFeed {
 public:
  ModelFeedImpl(std::string topic, KMeansSegmenter* segmenter, Recommender* recommender,
                std::shared_ptr<Logger> log, std::unique_ptr<RdKafka::KafkaConsumer> consumer)
      : topic_(std::move(topic)),
        segmenter_(segmenter),
        recommender_(recommender),
        log_(std::move(log)),
        consumer_(std::move(consumer)) {
    thread_ = std::thread([this] { Loop(); });
  }
  ~ModelFeedImpl() override {
    stop_.store(true);
    thread_.join();
    consumer_->close();
  }

  uint64_t latest_version() const override { return latest_.load(); }
  uint64_t latest_als_version() const override { return latest_als_.load(); }
  uint64_t records() const override { return records_.load(); }
  uint64_t refused() const override { return refused_.load(); }

 private:
  void Loop() {
    uint64_t errors = 0;
    while (!stop_.load()) {
      std::unique_ptr<RdKafka::Message> msg(consumer_->consume(100));
      if (msg->err() == RdKafka::ERR__TIMED_OUT || msg->err() == RdKafka::ERR__PARTITION_EOF) {
        continue;
      }
      const std::string where =
          "model topic '" + topic_ + "' offset " + std::to_string(msg->offset());
      if (msg->err() != RdKafka::ERR_NO_ERROR) {
        if (++errors <= 10 || errors % 1000 == 0) log_->Warn("model topic '" + topic_ + "': " + msg->errstr());
        continue;
      }
      ++records_;
      const std::string key = msg->key() != nullptr ? *msg->key() : std::string();
      if (key == kAlsModelTopicKey && msg->payload() != nullptr) {
        OfferAls(*msg, where);
        continue;
      }
      if (key != kSegmentModelKey || msg->payload() == nullptr) continue;  // another model kind
      v1::SegmentModel model;
      Status s = DecodeState(
          std::string_view(static_cast<const char*>(msg->payload()), msg->len()), &model);
      if (s.ok()) s = segmenter_->OfferModel(model);
      if (!s.ok()) {
        ++refused_;
        log_->Warn(where + ": " + s.message());
        continue;
      }
      uint64_t latest = latest_.load();
      while (model.version() > latest && !latest_.compare_exchange_weak(latest, model.version())) {
      }
    }
  }

  void OfferAls(RdKafka::Message& msg, const std::string& where) {
    if (recommender_ == nullptr) return;
    uint64_t version = 0;
    bool found = false;
    if (RdKafka::Headers* headers = msg.headers(); headers != nullptr) {
      for (const RdKafka::Headers::Header& h : headers->get(kModelVersionHeader)) {
        if (h.value() == nullptr) continue;
        const std::string text(static_cast<const char*>(h.value()), h.value_size());
        char* end = nullptr;
        version = std::strtoull(text.c_str(), &end, 10);
        found = !text.empty() && end == text.c_str() + text.size() && version > 0;
      }
    }
    Status s = found ? recommender_->OfferModel(
                           version, std::string(static_cast<const char*>(msg.payload()), msg.len()))
                     : Status::InvalidArgument(std::string("ALS model without a valid '") +
                                               kModelVersionHeader + "' header");
    if (!s.ok()) {
      ++refused_;
      log_->Warn(where + ": " + s.message());
      return;
    }
    uint64_t latest = latest_als_.load();
    while (version > latest && !latest_als_.compare_exchange_weak(latest, version)) {
    }
  }

  const std::string topic_;
  KMeansSegmenter* const segmenter_;
  Recommender* const recommender_;
  std::shared_ptr<Logger> log_;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> latest_{0}, latest_als_{0}, records_{0}, refused_{0};
  std::thread thread_;
};

}  // namespace

StatusOr<std::unique_ptr<ModelFeed>> ModelFeed::Start(const KafkaConfig& kafka,
                                                      KMeansSegmenter* segmenter,
                                                      Recommender* recommender,
                                                      std::shared_ptr<Logger> log) {
  if (kafka.model_topic.empty()) return Status::InvalidArgument("kafka.model_topic is empty");
  auto created = NewKafkaConsumer(
      AssignOnlyConsumerProperties(kafka, "streamrec-models", "-models"), "model feed");
  if (!created.ok()) return created.status();
  std::unique_ptr<RdKafka::KafkaConsumer> consumer = std::move(created).value();
  std::vector<RdKafka::TopicPartition*> assignment = {
      RdKafka::TopicPartition::create(kafka.model_topic, 0, RdKafka::Topic::OFFSET_BEGINNING)};
  RdKafka::ErrorCode err = consumer->assign(assignment);
  RdKafka::TopicPartition::destroy(assignment);
  if (err != RdKafka::ERR_NO_ERROR) {
    return Status::IOError("model topic '" + kafka.model_topic + "': cannot assign: " +
                           RdKafka::err2str(err));
  }
  return std::unique_ptr<ModelFeed>(
      new ModelFeedImpl(kafka.model_topic, segmenter, recommender, std::move(log),
                        std::move(consumer)));
}

}  // namespace streamrec
