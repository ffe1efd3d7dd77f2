#include "kafka/item_stats_feed.h"

#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "kafka/topic_feed.h"

namespace streamrec {

namespace {

class ItemStatsFeedImpl : public ItemStatsFeed {
 public:
  Status Start(const KafkaConfig& kafka, std::shared_ptr<Logger> log) {
    auto feed = TopicFeed::Start(
        kafka, kafka.item_stats_topic, "item-stats topic",
        [this](uint32_t p, std::string_view key, const std::string_view* value) {
          return OnRecord(p, key, value);
        },
        std::move(log));
    if (!feed.ok()) return feed.status();
    feed_ = std::move(feed).value();
    return Status::OK();
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
  uint64_t records() const override { return feed_->records(); }
  uint64_t refused() const override { return feed_->refused(); }
  uint32_t partitions() const override { return feed_->partitions(); }
  uint64_t lag() const override { return feed_->lag(); }

 private:
  // The feed's thread.
  Status OnRecord(uint32_t p, std::string_view key, const std::string_view* value) {
    // A tombstone or a record without a key: nothing this build writes.
    if (key.empty() || value == nullptr) return Status::InvalidArgument("a record without key or value");
    ItemStats stats;
    STREAMREC_RETURN_IF_ERROR(DecodeState(*value, &stats));
    if (stats.item_id() != key) {
      return Status::Corruption("key '" + std::string(key) + "' holds the statistics of item '" +
                                stats.item_id() + "'");
    }
    std::lock_guard<std::mutex> lock(mu_);
    pending_[{p, stats.item_id()}] = std::move(stats);
    return Status::OK();
  }

  std::mutex mu_;
  std::map<std::pair<uint32_t, std::string>, ItemStats> pending_;  // guarded by mu_
  std::unique_ptr<TopicFeed> feed_;  // last: its thread stops first
};

}  // namespace

StatusOr<std::unique_ptr<ItemStatsFeed>> ItemStatsFeed::Start(const KafkaConfig& kafka,
                                                              std::shared_ptr<Logger> log) {
  if (kafka.item_stats_topic.empty()) {
    return Status::InvalidArgument("kafka.item_stats_topic is empty");
  }
  auto feed = std::make_unique<ItemStatsFeedImpl>();
  STREAMREC_RETURN_IF_ERROR(feed->Start(kafka, std::move(log)));
  return std::unique_ptr<ItemStatsFeed>(std::move(feed));
}

}  // namespace streamrec
