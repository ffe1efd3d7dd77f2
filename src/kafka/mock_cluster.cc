#include "kafka/mock_cluster.h"

namespace streamrec {

namespace {
Status FromKafka(rd_kafka_resp_err_t err, const std::string& what) {
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return Status::OK();
  return Status::IOError(what + ": " + rd_kafka_err2str(err));
}
}  // namespace

StatusOr<std::unique_ptr<MockKafkaCluster>> MockKafkaCluster::Start(int brokers) {
  if (brokers < 1) return Status::InvalidArgument("brokers must be at least 1, got " + std::to_string(brokers));
  std::unique_ptr<MockKafkaCluster> mock(new MockKafkaCluster());
  char error[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "log_level", "3", error, sizeof(error));
  mock->handle_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof(error));
  if (mock->handle_ == nullptr) {
    rd_kafka_conf_destroy(conf);
    return Status::IOError(std::string("mock cluster handle: ") + error);
  }
  mock->cluster_ = rd_kafka_mock_cluster_new(mock->handle_, brokers);
  if (mock->cluster_ == nullptr) return Status::IOError("cannot start the mock Kafka cluster");
  mock->bootstrap_ = rd_kafka_mock_cluster_bootstraps(mock->cluster_);
  mock->brokers_ = brokers;
  return mock;
}

MockKafkaCluster::~MockKafkaCluster() {
  if (cluster_ != nullptr) rd_kafka_mock_cluster_destroy(cluster_);
  if (handle_ != nullptr) rd_kafka_destroy(handle_);
}

Status MockKafkaCluster::CreateTopic(const std::string& topic, int partitions, int replication) {
  return FromKafka(rd_kafka_mock_topic_create(cluster_, topic.c_str(), partitions, replication),
                   "create topic '" + topic + "'");
}

Status MockKafkaCluster::SetBrokerDown(int broker_id) {
  return FromKafka(rd_kafka_mock_broker_set_down(cluster_, broker_id),
                   "broker " + std::to_string(broker_id) + " down");
}

Status MockKafkaCluster::SetBrokerUp(int broker_id) {
  return FromKafka(rd_kafka_mock_broker_set_up(cluster_, broker_id),
                   "broker " + std::to_string(broker_id) + " up");
}

Status MockKafkaCluster::SetPartitionLeader(const std::string& topic, int partition, int broker_id) {
  return FromKafka(rd_kafka_mock_partition_set_leader(cluster_, topic.c_str(), partition, broker_id),
                   "leader of " + topic + "/" + std::to_string(partition));
}

}  // namespace streamrec
