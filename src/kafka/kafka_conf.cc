#include "kafka/kafka_conf.h"

#include <algorithm>

#include "streamrec/config.h"

namespace streamrec {

StatusOr<std::unique_ptr<RdKafka::Conf>> MakeKafkaConf(
    const std::map<std::string, std::string>& properties, const std::string& what) {
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string error;
  for (const auto& [key, value] : properties) {
    if (conf->set(key, value, error) != RdKafka::Conf::CONF_OK) {
      std::string shown = IsSecretKey(key) ? "***" : value;
      return Status::InvalidArgument("kafka." + what + "." + key + "='" + shown + "': " + error);
    }
  }
  return conf;
}

StatusOr<std::unique_ptr<RdKafka::KafkaConsumer>> NewKafkaConsumer(
    const std::map<std::string, std::string>& properties, const std::string& what) {
  auto conf = MakeKafkaConf(properties, what);
  if (!conf.ok()) return conf.status();
  std::string error;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer(
      RdKafka::KafkaConsumer::create(conf->get(), error));
  if (!consumer) return Status::InvalidArgument(what + ": cannot create a consumer: " + error);
  return consumer;
}

std::map<std::string, std::string> PrefetchProperties(int max_prefetch_mb) {
  const int64_t mb = std::max(1, max_prefetch_mb);
  return {{"queued.max.messages.kbytes", std::to_string(mb * 1024)},
          {"queued.min.messages", std::to_string(mb * kPrefetchRecordsPerMb)}};
}

std::string RedactedProperties(const std::map<std::string, std::string>& properties) {
  std::string out;
  for (const auto& [key, value] : properties) {
    if (!out.empty()) out += ", ";
    out += key + "=" + (IsSecretKey(key) ? "***" : value);
  }
  return out;
}

std::map<std::string, std::string> AssignOnlyConsumerProperties(const KafkaConfig& kafka,
                                                                const std::string& client_id,
                                                                const std::string& group_suffix) {
  std::map<std::string, std::string> props = {{"bootstrap.servers", kafka.brokers}};
  for (const auto& [k, v] : kafka.consumer) props[k] = v;  // security settings among them
  props["client.id"] = client_id;
  props["group.id"] = kafka.group_id + group_suffix;  // never joined: assign() only
  props["enable.auto.commit"] = "false";
  props["enable.auto.offset.store"] = "false";
  props["enable.partition.eof"] = "false";
  return props;
}

std::map<std::string, std::string> ProducerProperties(const KafkaConfig& kafka,
                                                      const std::string& client_id) {
  std::map<std::string, std::string> props = {
      {"bootstrap.servers", kafka.brokers},
      {"client.id", client_id},
      {"enable.idempotence", "true"},
      {"linger.ms", "5"},
      {"compression.type", "lz4"},
  };
  for (const auto& [k, v] : kafka.producer) props[k] = v;
  return props;
}

StatusOr<uint32_t> TopicPartitionCount(RdKafka::Handle* handle, const std::string& topic,
                                       int timeout_ms, const std::string& what) {
  std::string error;
  std::unique_ptr<RdKafka::Topic> t(RdKafka::Topic::create(handle, topic, nullptr, error));
  if (!t) return Status::IOError(what + " '" + topic + "': " + error);
  RdKafka::Metadata* raw = nullptr;
  RdKafka::ErrorCode err = handle->metadata(false, t.get(), &raw, timeout_ms);
  std::unique_ptr<RdKafka::Metadata> metadata(raw);
  if (err != RdKafka::ERR_NO_ERROR) {
    return Status::IOError(what + " '" + topic + "': no metadata: " + RdKafka::err2str(err));
  }
  uint32_t partitions = 0;
  for (const RdKafka::TopicMetadata* m : *metadata->topics()) {
    if (m->topic() == topic && m->err() == RdKafka::ERR_NO_ERROR) {
      partitions = static_cast<uint32_t>(m->partitions()->size());
    }
  }
  if (partitions == 0) return Status::NotFound(what + " '" + topic + "' has no partitions");
  return partitions;
}

}  // namespace streamrec
