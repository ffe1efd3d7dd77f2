// For end-to-end tests with services in processes of their own: a reader of the output topic that
// keeps every (customer, list version)'s content as records arrive, and a wait on a process's log.
#ifndef STREAMREC_TESTS_TESTUTIL_OUTPUT_TAIL_H_
#define STREAMREC_TESTS_TESTUTIL_OUTPUT_TAIL_H_

#include <librdkafka/rdkafkacpp.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "testutil/subprocess.h"

namespace streamrec::testing {

// Reads `topic` (RecommendationList protobuf records) from its beginning on a thread of its own
// for the whole run (the embedded cluster keeps only a few MiB per partition, so records are
// taken as they come), keeping every (customer, version)'s content.
class OutputTail {
 public:
  OutputTail(const std::string& brokers, const std::string& topic, int partitions,
             const std::string& group_id);
  ~OutputTail() { Stop(); }

  uint64_t records() const {
    std::lock_guard<std::mutex> lock(mu_);
    return records_;
  }
  // Waits until at least `n` records arrived; false at the deadline.
  bool WaitForRecords(uint64_t n, int timeout_ms);
  // Reads on until every partition's current end, then stops. False at the deadline.
  bool FinishAtEnd(int timeout_ms);

  // Only after FinishAtEnd.
  const std::map<std::pair<std::string, uint64_t>, std::string>& contents() const { return contents_; }
  uint64_t conflicts() const { return conflicts_; }
  uint64_t undecodable() const { return undecodable_; }

 private:
  void Stop();
  void Loop();

  const std::string topic_;
  const int partitions_;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  uint64_t records_ = 0;
  uint64_t conflicts_ = 0;
  uint64_t undecodable_ = 0;
  std::map<int32_t, int64_t> next_;
  std::map<std::pair<std::string, uint64_t>, std::string> contents_;
};

// Waits (on the process's log, with a deadline) until `needle` appears; false at the deadline.
bool WaitForLog(const BackgroundProcess& process, const std::string& needle, int timeout_ms);

}  // namespace streamrec::testing

#endif  // STREAMREC_TESTS_TESTUTIL_OUTPUT_TAIL_H_
