// A test consumer that reads whole topics: assigned every partition from the beginning (no group
// join, so no rebalance wait), auto-commit off.
#ifndef STREAMREC_TESTS_TESTUTIL_KAFKA_READER_H_
#define STREAMREC_TESTS_TESTUTIL_KAFKA_READER_H_

#include <librdkafka/rdkafkacpp.h>

#include <memory>
#include <string>

namespace streamrec::testing {

// Null (with a test failure naming the error) when the consumer cannot be created.
std::unique_ptr<RdKafka::KafkaConsumer> NewTopicReader(const std::string& brokers,
                                                       const std::string& topic, int partitions,
                                                       const std::string& group_id);

}  // namespace streamrec::testing

#endif  // STREAMREC_TESTS_TESTUTIL_KAFKA_READER_H_
