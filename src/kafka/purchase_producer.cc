#include "kafka/purchase_producer.h"

#include <chrono>
#include <thread>

#include "file_io.h"
#include "streamrec/decoder.h"
#include "streamrec/v1/events.pb.h"

namespace streamrec {

StatusOr<std::unique_ptr<PurchaseProducer>> PurchaseProducer::Create(const std::string& brokers,
                                                                     const std::string& topic) {
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string error;
  if (conf->set("bootstrap.servers", brokers, error) != RdKafka::Conf::CONF_OK ||
      conf->set("linger.ms", "10", error) != RdKafka::Conf::CONF_OK ||
      conf->set("queue.buffering.max.messages", "1000000", error) != RdKafka::Conf::CONF_OK ||
      conf->set("enable.idempotence", "true", error) != RdKafka::Conf::CONF_OK) {
    return Status::InvalidArgument("purchase producer: " + error);
  }
  auto p = std::make_unique<PurchaseProducer>();
  p->producer_.reset(RdKafka::Producer::create(conf.get(), error));
  if (!p->producer_) return Status::IOError("purchase producer: " + error);
  p->topic_ = topic;
  return p;
}

Status PurchaseProducer::ProduceRaw(const std::string& key, const std::string& value) {
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

Status PurchaseProducer::Produce(const PurchaseEvent& event) {
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
  return ProduceRaw(event.customer_id, proto.SerializeAsString());
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

StatusOr<uint64_t> ProduceCsvFeed(const std::string& brokers, const std::string& topic,
                                  const std::string& csv_path, double rate,
                                  const std::atomic<bool>& stop, const Clock* clock,
                                  const std::function<uint64_t()>& consumed, uint64_t max_ahead) {
  auto reader = LineReader::Open(csv_path);
  if (!reader.ok()) return reader.status();
  std::string line;
  if (!(*reader)->Next(&line)) return Status::InvalidArgument("'" + csv_path + "' is empty");
  auto decoder = NewCsvDecoder(DecoderOptions(), line);
  if (!decoder.ok()) return decoder.status();
  auto producer = PurchaseProducer::Create(brokers, topic);
  if (!producer.ok()) return producer.status();
  const int64_t start = clock->NowMicros();
  uint64_t n = 0;
  PurchaseEvent event;
  while (!stop.load() && (*reader)->Next(&line)) {
    if (!(*decoder)->Decode(line, &event).ok()) continue;
    STREAMREC_RETURN_IF_ERROR((*producer)->Produce(event));
    ++n;
    while (consumed && n > consumed() + max_ahead && !stop.load()) {
      (*producer)->Poll(10);
    }
    if (rate > 0 && n % 100 == 0) {
      int64_t due = start + static_cast<int64_t>(n / rate * 1e6);
      int64_t now = clock->NowMicros();
      if (due > now) std::this_thread::sleep_for(std::chrono::microseconds(due - now));
    }
  }
  STREAMREC_RETURN_IF_ERROR((*reader)->status());
  STREAMREC_RETURN_IF_ERROR((*producer)->Flush(60000));
  return n;
}

}  // namespace streamrec
