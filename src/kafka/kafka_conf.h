// Building librdkafka configurations from streamrec's configuration.
#ifndef STREAMREC_SRC_KAFKA_KAFKA_CONF_H_
#define STREAMREC_SRC_KAFKA_KAFKA_CONF_H_

#include <librdkafka/rdkafkacpp.h>

#include <map>
#include <memory>
#include <string>

#include "streamrec/config.h"
#include "streamrec/status.h"

namespace streamrec {

// A global conf with `properties` set in order (later entries win). Errors name the property;
// a secret's value is never part of a message.
StatusOr<std::unique_ptr<RdKafka::Conf>> MakeKafkaConf(
    const std::map<std::string, std::string>& properties, const std::string& what);

// Records per MiB of kafka.max_prefetch_mb that librdkafka may queue: a queued record costs its
// payload plus ~320 bytes of bookkeeping (measured with 60-byte records: ~380 bytes each), so
// 512 bytes per record keeps a queue of small records within about the budget as well.
constexpr int64_t kPrefetchRecordsPerMb = 2048;

// The consumer properties that bound its prefetch queue to `max_prefetch_mb`:
// queued.max.messages.kbytes (record payload) and queued.min.messages (records; librdkafka stops
// fetching for a partition once the consumer's queue holds this many, despite the name).
std::map<std::string, std::string> PrefetchProperties(int max_prefetch_mb);

// Properties of an idempotent producer: kafka.brokers, client.id `client_id`, idempotence,
// linger.ms 5, lz4 compression, then the kafka.producer properties (they win).
std::map<std::string, std::string> ProducerProperties(const KafkaConfig& kafka,
                                                      const std::string& client_id);

// Properties of a consumer that only reads assigned partitions (never joins a group, never
// commits): the changelog reader, the standby tailer, the model feed. kafka.brokers and the
// kafka.consumer properties (security among them), then client.id `client_id`, group.id
// kafka.group_id + `group_suffix` (librdkafka wants one), commits and partition EOF off.
std::map<std::string, std::string> AssignOnlyConsumerProperties(const KafkaConfig& kafka,
                                                                const std::string& client_id,
                                                                const std::string& group_suffix);

// Partitions of `topic` as the cluster's metadata says (asked through `handle`, waiting at most
// `timeout_ms`). NotFound when the topic has none; IOError naming `what` and the topic when the
// metadata cannot be read.
StatusOr<uint32_t> TopicPartitionCount(RdKafka::Handle* handle, const std::string& topic,
                                       int timeout_ms, const std::string& what);

// A consumer with `properties` (MakeKafkaConf; `what` names it in errors: "<what>: cannot create
// a consumer: ...").
StatusOr<std::unique_ptr<RdKafka::KafkaConsumer>> NewKafkaConsumer(
    const std::map<std::string, std::string>& properties, const std::string& what);

// "key=value, ..." with secret values replaced by "***", for logs.
std::string RedactedProperties(const std::map<std::string, std::string>& properties);

}  // namespace streamrec

#endif  // STREAMREC_SRC_KAFKA_KAFKA_CONF_H_
