// What one input record fetched ahead costs in memory, beyond its payload: the figure behind
// kafka.max_prefetch_mb's record cap (kPrefetchRecordsPerMb in src/kafka/kafka_conf.h, README
// "Overload"). librdkafka's queued.max.messages.kbytes counts payload bytes only, so a queue of
// small records is bounded in memory by the record count times this cost.
//
//   cmake --preset release && cmake --build build-release -j1 --target prefetch_memory_bench
//   build-release/prefetch_memory_bench [records] [payload bytes]     (default 600000 60)
//
// An embedded mock cluster (3 brokers, 48 partitions: it keeps ~5 MiB per partition) is filled
// with `records` records of `payload` bytes (keys "c<n>", as customer ids); then a consumer
// takes them all and holds every one (the C API's message is the queued op itself, so a held
// message costs what a queued one does). Prints the resident-set growth per record and per
// record beyond its payload. Not a Google Benchmark: one measurement of memory, not of time.
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

namespace {

long ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  long pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * 4096;
}

bool Set(rd_kafka_conf_t* conf, const char* name, const std::string& value) {
  char error[256];
  if (rd_kafka_conf_set(conf, name, value.c_str(), error, sizeof(error)) != RD_KAFKA_CONF_OK) {
    std::fprintf(stderr, "%s: %s\n", name, error);
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  const long records = argc > 1 ? std::atol(argv[1]) : 600000;
  const long payload = argc > 2 ? std::atol(argv[2]) : 60;
  char error[256];

  rd_kafka_conf_t* mock_conf = rd_kafka_conf_new();
  if (!Set(mock_conf, "test.mock.num.brokers", "3")) return 1;
  rd_kafka_t* mock = rd_kafka_new(RD_KAFKA_PRODUCER, mock_conf, error, sizeof(error));
  if (mock == nullptr) return std::fprintf(stderr, "%s\n", error), 1;
  rd_kafka_mock_cluster_t* cluster = rd_kafka_handle_mock_cluster(mock);
  rd_kafka_mock_topic_create(cluster, "t", 48, 1);
  const std::string bootstrap = rd_kafka_mock_cluster_bootstraps(cluster);

  rd_kafka_conf_t* producer_conf = rd_kafka_conf_new();
  if (!Set(producer_conf, "bootstrap.servers", bootstrap) ||
      !Set(producer_conf, "linger.ms", "20")) {
    return 1;
  }
  rd_kafka_t* producer = rd_kafka_new(RD_KAFKA_PRODUCER, producer_conf, error, sizeof(error));
  if (producer == nullptr) return std::fprintf(stderr, "%s\n", error), 1;
  const std::string value(static_cast<size_t>(payload), 'x');
  for (long i = 0; i < records; ++i) {
    const std::string key = "c" + std::to_string(i % 50000);
    while (rd_kafka_producev(producer, RD_KAFKA_V_TOPIC("t"), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                             RD_KAFKA_V_KEY(key.data(), key.size()),
                             RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                             RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      rd_kafka_poll(producer, 10);
    }
    rd_kafka_poll(producer, 0);
  }
  rd_kafka_flush(producer, 60000);
  rd_kafka_destroy(producer);

  const long before = ResidentBytes();
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  if (!Set(conf, "bootstrap.servers", bootstrap) || !Set(conf, "group.id", "prefetch-memory") ||
      !Set(conf, "auto.offset.reset", "earliest") ||
      !Set(conf, "queued.max.messages.kbytes", "2000000") ||
      !Set(conf, "queued.min.messages", "10000000")) {
    return 1;
  }
  rd_kafka_t* consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, error, sizeof(error));
  if (consumer == nullptr) return std::fprintf(stderr, "%s\n", error), 1;
  rd_kafka_poll_set_consumer(consumer);
  rd_kafka_topic_partition_list_t* topics = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(topics, "t", RD_KAFKA_PARTITION_UA);
  rd_kafka_subscribe(consumer, topics);
  rd_kafka_topic_partition_list_destroy(topics);
  std::vector<rd_kafka_message_t*> held;
  held.reserve(static_cast<size_t>(records));
  const long vector_bytes = records * static_cast<long>(sizeof(rd_kafka_message_t*));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (static_cast<long>(held.size()) < records && std::chrono::steady_clock::now() < deadline) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer, 100);
    if (m == nullptr) continue;
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      rd_kafka_message_destroy(m);
      continue;
    }
    held.push_back(m);
  }
  const long grown = ResidentBytes() - before - vector_bytes;
  const double per_record = static_cast<double>(grown) / static_cast<double>(held.size());
  std::printf("{\"records\":%zu,\"payload_bytes\":%ld,\"rss_growth_bytes\":%ld,"
              "\"bytes_per_record\":%.0f,\"bytes_per_record_beyond_payload\":%.0f}\n",
              held.size(), payload, grown, per_record, per_record - static_cast<double>(payload));
  for (rd_kafka_message_t* m : held) rd_kafka_message_destroy(m);
  rd_kafka_consumer_close(consumer);
  rd_kafka_destroy(consumer);
  rd_kafka_destroy(mock);
  return held.size() == static_cast<size_t>(records) ? 0 : 1;
}
