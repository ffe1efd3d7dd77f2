// MockKafkaCluster: librdkafka's in-process mock cluster (a real Kafka protocol endpoint on
// 127.0.0.1 with ephemeral ports), for the demo, `streamrec mock-kafka` and tests.
#ifndef STREAMREC_SRC_KAFKA_MOCK_CLUSTER_H_
#define STREAMREC_SRC_KAFKA_MOCK_CLUSTER_H_

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>
#include <string>

#include "streamrec/status.h"

namespace streamrec {

class MockKafkaCluster {
 public:
  // Starts `brokers` brokers (ids 1..brokers).
  static StatusOr<std::unique_ptr<MockKafkaCluster>> Start(int brokers);
  ~MockKafkaCluster();
  MockKafkaCluster(const MockKafkaCluster&) = delete;
  MockKafkaCluster& operator=(const MockKafkaCluster&) = delete;

  // "127.0.0.1:port,..."
  const std::string& bootstrap() const { return bootstrap_; }

  // Also accepts bootstrap connections on 127.0.0.1:`port` (0: any free port), relayed to
  // broker 1: librdkafka 2.0.2's mock brokers listen on ports the OS picks, and a fixed
  // bootstrap address is what other processes want. Clients reach the brokers themselves at
  // the addresses the metadata advertises. Returns the address ("127.0.0.1:port").
  StatusOr<std::string> ListenOn(int port);
  int brokers() const { return brokers_; }

  Status CreateTopic(const std::string& topic, int partitions, int replication = 1);
  Status SetBrokerDown(int broker_id);
  Status SetBrokerUp(int broker_id);
  Status SetPartitionLeader(const std::string& topic, int partition, int broker_id);
  // The next requests of type `api_key` (0 Produce, 1 Fetch, 8 OffsetCommit, ...), whoever sends
  // them, fail with `errors`, one each, in order (librdkafka's fault injection).
  void PushRequestErrors(int16_t api_key, const std::vector<rd_kafka_resp_err_t>& errors);
  rd_kafka_mock_cluster_t* raw() { return cluster_; }

 private:
  MockKafkaCluster() = default;
  void AcceptLoop(int listen_fd, std::string target_host, int target_port);

  rd_kafka_t* handle_ = nullptr;
  std::atomic<bool> stopping_{false};
  std::vector<std::thread> listeners_;  // touched by the owner's thread only
  std::mutex relays_mu_;
  std::vector<std::thread> relays_;     // added by the listeners
  rd_kafka_mock_cluster_t* cluster_ = nullptr;
  std::string bootstrap_;
  int brokers_ = 0;
};

}  // namespace streamrec

#endif  // STREAMREC_SRC_KAFKA_MOCK_CLUSTER_H_
