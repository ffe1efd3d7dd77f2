#include "kafka/sample_feed.h"

#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>

#include "kafka/topic_feed.h"

namespace streamrec {

namespace {

class SampleFeedImpl : public SampleFeed {
 public:
  Status Start(const KafkaConfig& kafka, std::shared_ptr<Logger> log) {
    auto feed = TopicFeed::Start(
        kafka, kafka.sample_topic, "sample topic",
        [this](uint32_t p, std::string_view key, const std::string_view* value) {
          return OnRecord(p, key, value);
        },
        std::move(log));
    if (!feed.ok()) return feed.status();
    feed_ = std::move(feed).value();
    return Status::OK();
  }

  void SetOwned(std::set<uint32_t> owned) override {
    std::lock_guard<std::mutex> lock(mu_);
    owned_ = std::move(owned);
  }
  std::set<uint32_t> owned() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return owned_;
  }
  size_t ForEach(const std::function<void(const CustomerState&)>& visit) override {
    std::lock_guard<std::mutex> lock(mu_);
    size_t n = 0;
    CustomerState state;
    for (const auto& [p, customers] : samples_) {
      if (owned_.count(p) > 0) continue;
      for (const auto& [id, encoded] : customers) {
        if (!DecodeState(encoded, &state).ok()) continue;  // checked when read
        visit(state);
        ++n;
      }
    }
    return n;
  }
  size_t remote() const override {
    std::lock_guard<std::mutex> lock(mu_);
    size_t n = 0;
    for (const auto& [p, customers] : samples_) {
      if (owned_.count(p) == 0) n += customers.size();
    }
    return n;
  }
  uint64_t records() const override { return feed_->records(); }
  uint64_t refused() const override { return feed_->refused(); }
  uint64_t lag() const override { return feed_->lag(); }

 private:
  // The feed's thread.
  Status OnRecord(uint32_t p, std::string_view key, const std::string_view* value) {
    if (key.empty()) return Status::InvalidArgument("a record without a key");
    if (value == nullptr) {  // a tombstone: the customer left the sample
      std::lock_guard<std::mutex> lock(mu_);
      samples_[p].erase(std::string(key));
      return Status::OK();
    }
    CustomerState state;
    STREAMREC_RETURN_IF_ERROR(DecodeState(*value, &state));
    if (state.customer_id() != key) {
      return Status::Corruption("key '" + std::string(key) + "' holds the state of customer '" +
                                state.customer_id() + "'");
    }
    std::lock_guard<std::mutex> lock(mu_);
    samples_[p][std::string(key)] = std::string(*value);
    return Status::OK();
  }

  mutable std::mutex mu_;
  std::map<uint32_t, std::unordered_map<std::string, std::string>> samples_;  // guarded by mu_
  std::set<uint32_t> owned_;                                                  // guarded by mu_
  std::unique_ptr<TopicFeed> feed_;  // last: its thread stops first
};

}  // namespace

StatusOr<std::unique_ptr<SampleFeed>> SampleFeed::Start(const KafkaConfig& kafka,
                                                        std::shared_ptr<Logger> log) {
  if (kafka.sample_topic.empty()) return Status::InvalidArgument("kafka.sample_topic is empty");
  auto feed = std::make_unique<SampleFeedImpl>();
  STREAMREC_RETURN_IF_ERROR(feed->Start(kafka, std::move(log)));
  return std::unique_ptr<SampleFeed>(std::move(feed));
}

}  // namespace streamrec
