#include "kafka/purchase_producer.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include "file_io.h"
#include "streamrec/decoder.h"
#include "streamrec/v1/events.pb.h"

namespace streamrec {

StatusOr<std::unique_ptr<PurchaseProducer>> PurchaseProducer::Create(
    const std::string& brokers, const std::string& topic,
    const std::map<std::string, std::string>& properties) {
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string error;
  if (conf->set("bootstrap.servers", brokers, error) != RdKafka::Conf::CONF_OK ||
      conf->set("linger.ms", "10", error) != RdKafka::Conf::CONF_OK ||
      conf->set("queue.buffering.max.messages", "1000000", error) != RdKafka::Conf::CONF_OK ||
      conf->set("enable.idempotence", "true", error) != RdKafka::Conf::CONF_OK) {
    return Status::InvalidArgument("purchase producer: " + error);
  }
  for (const auto& [key, value] : properties) {
    if (conf->set(key, value, error) != RdKafka::Conf::CONF_OK) {
      return Status::InvalidArgument("purchase producer: " + key + ": " + error);
    }
  }
  auto p = std::make_unique<PurchaseProducer>();
  p->producer_.reset(RdKafka::Producer::create(conf.get(), error));
  if (!p->producer_) return Status::IOError("purchase producer: " + error);
  p->topic_ = topic;
  return p;
}

Status PurchaseProducer::ProduceRaw(std::string_view key, std::string_view value) {
  while (true) {
    RdKafka::ErrorCode err = producer_->produce(
        topic_, RdKafka::Topic::PARTITION_UA, RdKafka::Producer::RK_MSG_COPY,
        const_cast<char*>(value.data()), value.size(), key.empty() ? nullptr : key.data(),
        key.size(), 0, nullptr, nullptr);
    if (err == RdKafka::ERR_NO_ERROR) break;
    if (err != RdKafka::ERR__QUEUE_FULL) {
      return Status::IOError("produce to '" + topic_ + "': " + RdKafka::err2str(err));
    }
    producer_->poll(100);  // wait for room in the queue
  }
  ++produced_;
  producer_->poll(0);
  return Status::OK();
}

std::string EncodePurchaseEvent(const PurchaseEvent& event) {
  v1::PurchaseEvent proto;
  proto.set_event_id(event.event_id);
  proto.set_customer_id(event.customer_id);
  proto.set_item_id(event.item_id);
  proto.set_event_time_ms(event.event_time_ms);
  proto.set_quantity(event.quantity);
  if (event.unit_price) proto.set_unit_price(*event.unit_price);
  if (event.amount) proto.set_amount(*event.amount);
  proto.set_discount(event.discount);
  proto.set_channel(event.channel);
  proto.set_currency(event.currency);
  return proto.SerializeAsString();
}

Status PurchaseProducer::Produce(const PurchaseEvent& event) {
  return ProduceRaw(event.customer_id, EncodePurchaseEvent(event));
}

void PurchaseProducer::Poll(int timeout_ms) { producer_->poll(timeout_ms); }

Status PurchaseProducer::Flush(int timeout_ms) {
  RdKafka::ErrorCode err = producer_->flush(timeout_ms);
  if (err != RdKafka::ERR_NO_ERROR) {
    return Status::IOError("flush to '" + topic_ + "': " + RdKafka::err2str(err) + " (" +
                           std::to_string(producer_->outq_len()) + " records unacknowledged)");
  }
  return Status::OK();
}

StatusOr<std::unique_ptr<CsvEventReader>> CsvEventReader::Open(const std::string& csv_path) {
  auto lines = LineReader::Open(csv_path);
  if (!lines.ok()) return lines.status();
  std::unique_ptr<CsvEventReader> reader(new CsvEventReader());
  reader->reader_ = std::move(lines).value();
  if (!reader->reader_->Next(&reader->line_)) {
    if (!reader->reader_->status().ok()) return reader->reader_->status();
    return Status::InvalidArgument("'" + csv_path + "' is empty");
  }
  auto decoder = NewCsvDecoder(DecoderOptions(), reader->line_);
  if (!decoder.ok()) return decoder.status();
  reader->decoder_ = std::move(decoder).value();
  return reader;
}

CsvEventReader::~CsvEventReader() = default;

bool CsvEventReader::Next(PurchaseEvent* event) {
  while (reader_->Next(&line_)) {
    if (decoder_->Decode(line_, event).ok()) return true;
    ++skipped_;
  }
  return false;
}

const Status& CsvEventReader::status() const { return reader_->status(); }

StatusOr<uint64_t> ProduceCsvFeed(const std::string& brokers, const std::string& topic,
                                  const std::string& csv_path, double rate,
                                  const std::atomic<bool>& stop, const Clock* clock,
                                  const std::function<uint64_t()>& consumed, uint64_t max_ahead) {
  CsvFeedOptions options;
  options.brokers = brokers;
  options.topic = topic;
  options.csv_path = csv_path;
  options.rate = rate;
  options.consumed = consumed;
  options.max_ahead = max_ahead;
  return ProduceCsvFeed(options, stop, clock);
}

StatusOr<uint64_t> ProduceCsvFeed(const CsvFeedOptions& options, const std::atomic<bool>& stop,
                                  const Clock* clock) {
  auto reader = CsvEventReader::Open(options.csv_path);
  if (!reader.ok()) return reader.status();
  auto producer = PurchaseProducer::Create(options.brokers, options.topic,
                                           options.producer_properties);
  if (!producer.ok()) return producer.status();
  const int64_t start = clock->NowMicros();
  uint64_t n = 0;
  PurchaseEvent event;
  while (!stop.load() && (*reader)->Next(&event)) {
    STREAMREC_RETURN_IF_ERROR((*producer)->Produce(event));
    ++n;
    while (options.consumed && n > options.consumed() + options.max_ahead && !stop.load()) {
      (*producer)->Poll(10);
    }
    if (options.on_progress && (n + (*reader)->skipped()) % 1000 == 0) {
      options.on_progress(n, (*reader)->skipped());
    }
    if (options.rate > 0) {
      // Each event at its due time, give or take a millisecond: bursts of many events at once
      // (this once slept every 100 events: 50 ms bursts at 2,000/s) would measure how the
      // service swallows bursts, not its latency under a steady rate.
      const int64_t due = start + static_cast<int64_t>(n / options.rate * 1e6);
      const int64_t now = clock->NowMicros();
      if (due - now >= 1000) std::this_thread::sleep_for(std::chrono::microseconds(due - now));
    }
  }
  STREAMREC_RETURN_IF_ERROR((*reader)->status());
  STREAMREC_RETURN_IF_ERROR((*producer)->Flush(options.flush_timeout_ms));
  if (options.on_progress) options.on_progress(n, (*reader)->skipped());
  return n;
}

StatusOr<int> WaitForTopic(const std::string& brokers, const std::string& topic, int timeout_ms,
                           const std::map<std::string, std::string>& properties) {
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string error;
  // Connection failures are reported once, in the returned Status, not logged on every retry.
  if (conf->set("bootstrap.servers", brokers, error) != RdKafka::Conf::CONF_OK ||
      conf->set("log_level", "2", error) != RdKafka::Conf::CONF_OK) {
    return Status::InvalidArgument("bootstrap.servers '" + brokers + "': " + error);
  }
  for (const auto& [key, value] : properties) {
    if (conf->set(key, value, error) != RdKafka::Conf::CONF_OK) {
      return Status::InvalidArgument(key + ": " + error);
    }
  }
  std::unique_ptr<RdKafka::Producer> client(RdKafka::Producer::create(conf.get(), error));
  if (!client) return Status::IOError("Kafka client: " + error);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  std::string last_error = "no answer";
  bool brokers_answered = false;
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0) break;
    // All topics: asking for one would let a broker with auto-creation create it.
    RdKafka::Metadata* raw = nullptr;
    RdKafka::ErrorCode err =
        client->metadata(/*all_topics=*/true, nullptr, &raw, static_cast<int>(std::min<int64_t>(left, 5000)));
    std::unique_ptr<RdKafka::Metadata> metadata(raw);
    if (err == RdKafka::ERR_NO_ERROR && metadata) {
      brokers_answered = true;
      for (const RdKafka::TopicMetadata* t : *metadata->topics()) {
        if (t->topic() == topic && t->err() == RdKafka::ERR_NO_ERROR && !t->partitions()->empty()) {
          return static_cast<int>(t->partitions()->size());
        }
      }
      last_error = "topic not in the cluster's metadata";
      client->poll(200);  // the topic may be being created: ask again shortly
    } else {
      last_error = RdKafka::err2str(err);
      client->poll(200);  // no busy loop when the brokers refuse connections at once
    }
  }
  if (brokers_answered) {
    return Status::NotFound("topic '" + topic + "' does not exist on " + brokers + " (waited " +
                            std::to_string(timeout_ms) + " ms)");
  }
  return Status::IOError("no Kafka broker reachable at " + brokers + " within " +
                         std::to_string(timeout_ms) + " ms (" + last_error + ")");
}

}  // namespace streamrec
