// MockKafkaCluster: librdkafka's in-process mock cluster (a real Kafka protocol endpoint on
// 127.0.0.1 with ephemeral ports), for the demo, `streamrec mock-kafka` and tests.
#ifndef STREAMREC_SRC_KAFKA_MOCK_CLUSTER_H_
#define STREAMREC_SRC_KAFKA_MOCK_CLUSTER_H_

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <memory>
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
  int brokers() const { return brokers_; }

  Status CreateTopic(const std::string& topic, int partitions, int replication = 1);
  Status SetBrokerDown(int broker_id);
  Status SetBrokerUp(int broker_id);
  Status SetPartitionLeader(const std::string& topic, int partition, int broker_id);
  rd_kafka_mock_cluster_t* raw() { return cluster_; }

 private:
  MockKafkaCluster() = default;
  rd_kafka_t* handle_ = nullptr;
  rd_kafka_mock_cluster_t* cluster_ = nullptr;
  std::string bootstrap_;
  int brokers_ = 0;
};

}  // namespace streamrec

#endif  // STREAMREC_SRC_KAFKA_MOCK_CLUSTER_H_
