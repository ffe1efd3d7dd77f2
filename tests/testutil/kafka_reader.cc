#include "testutil/kafka_reader.h"

#include <gtest/gtest.h>

#include <vector>

namespace streamrec::testing {

std::unique_ptr<RdKafka::KafkaConsumer> NewTopicReader(const std::string& brokers,
                                                       const std::string& topic, int partitions,
                                                       const std::string& group_id) {
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string err;
  conf->set("bootstrap.servers", brokers, err);
  conf->set("group.id", group_id, err);
  conf->set("auto.offset.reset", "earliest", err);
  conf->set("enable.auto.commit", "false", err);
  std::unique_ptr<RdKafka::KafkaConsumer> consumer(RdKafka::KafkaConsumer::create(conf.get(), err));
  EXPECT_NE(consumer, nullptr) << err;
  if (consumer == nullptr) return nullptr;
  std::vector<RdKafka::TopicPartition*> parts;
  for (int p = 0; p < partitions; ++p) {
    parts.push_back(RdKafka::TopicPartition::create(topic, p, RdKafka::Topic::OFFSET_BEGINNING));
  }
  consumer->assign(parts);
  RdKafka::TopicPartition::destroy(parts);
  return consumer;
}

}  // namespace streamrec::testing
