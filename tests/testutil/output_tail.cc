#include "testutil/output_tail.h"

#include <poll.h>

#include <chrono>

#include "streamrec/v1/state.pb.h"
#include "testutil/kafka_reader.h"

namespace streamrec::testing {

OutputTail::OutputTail(const std::string& brokers, const std::string& topic, int partitions,
                       const std::string& group_id)
    : topic_(topic), partitions_(partitions) {
  consumer_ = NewTopicReader(brokers, topic, partitions, group_id);
  if (consumer_ != nullptr) thread_ = std::thread([this] { Loop(); });
}

bool OutputTail::WaitForRecords(uint64_t n, int timeout_ms) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return records_ >= n; });
}

bool OutputTail::FinishAtEnd(int timeout_ms) {
  std::map<int32_t, int64_t> ends;
  for (int32_t p = 0; p < partitions_; ++p) {
    int64_t low = 0;
    int64_t high = 0;
    if (consumer_ == nullptr ||
        consumer_->query_watermark_offsets(topic_, p, &low, &high, 10000) != RdKafka::ERR_NO_ERROR) {
      return false;
    }
    ends[p] = high;
  }
  bool reached = false;
  {
    std::unique_lock<std::mutex> lock(mu_);
    reached = cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] {
      for (const auto& [p, end] : ends) {
        auto it = next_.find(p);
        if (end > 0 && (it == next_.end() || it->second < end)) return false;
      }
      return true;
    });
  }
  Stop();
  return reached;
}

void OutputTail::Stop() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
  if (consumer_ != nullptr) {
    consumer_->close();
    consumer_.reset();
  }
}

void OutputTail::Loop() {
  while (!stop_.load()) {
    std::unique_ptr<RdKafka::Message> m(consumer_->consume(100));
    if (m->err() != RdKafka::ERR_NO_ERROR) continue;
    std::string value(static_cast<const char*>(m->payload()), m->len());
    v1::RecommendationList list;
    std::lock_guard<std::mutex> lock(mu_);
    if (!list.ParseFromString(value)) {
      ++undecodable_;
    } else {
      auto [it, inserted] = contents_.emplace(std::make_pair(list.customer_id(), list.version()), value);
      if (!inserted && it->second != value) ++conflicts_;
    }
    ++records_;
    next_[m->partition()] = m->offset() + 1;
    cv_.notify_all();
  }
}

bool WaitForLog(const BackgroundProcess& process, const std::string& needle, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (process.Output().find(needle) != std::string::npos) return true;
    ::poll(nullptr, 0, 10);  // the log is a file: look again shortly
  }
  return false;
}

}  // namespace streamrec::testing
