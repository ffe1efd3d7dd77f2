// PurchaseProducer: writes purchase events to a Kafka topic (demo feed, `streamrec bench`,
// tests), key = customer id, value = protobuf PurchaseEvent (or JSON).
#ifndef STREAMREC_SRC_KAFKA_PURCHASE_PRODUCER_H_
#define STREAMREC_SRC_KAFKA_PURCHASE_PRODUCER_H_

#include <librdkafka/rdkafkacpp.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "streamrec/clock.h"
#include "streamrec/event.h"
#include "streamrec/status.h"

namespace streamrec {

class PurchaseProducer {
 public:
  static StatusOr<std::unique_ptr<PurchaseProducer>> Create(const std::string& brokers,
                                                            const std::string& topic);
  // Encodes `event` as streamrec.v1.PurchaseEvent and produces it (retries on a full queue).
  Status Produce(const PurchaseEvent& event);
  // Produces raw bytes (malformed records for tests).
  Status ProduceRaw(const std::string& key, const std::string& value);
  // Serves delivery reports for up to `timeout_ms`.
  void Poll(int timeout_ms);
  // Waits for every produced record to be acknowledged.
  Status Flush(int timeout_ms);
  uint64_t produced() const { return produced_; }

 private:
  std::unique_ptr<RdKafka::Producer> producer_;
  std::string topic_;
  uint64_t produced_ = 0;
};

// Produces the events of a canonical CSV file (plain or gzip, as `streamrec generate` writes)
// at `rate` events/s (0: as fast as possible) until the file ends or `stop` is set. Returns the
// number produced. When `consumed` is given, production waits while it is more than
// `max_ahead` events ahead of it (the embedded cluster keeps only a few MiB per partition: a
// producer far ahead of its consumer would have its oldest records dropped). Pacing sleeps:
// this is a load driver, not a component.
StatusOr<uint64_t> ProduceCsvFeed(const std::string& brokers, const std::string& topic,
                                  const std::string& csv_path, double rate,
                                  const std::atomic<bool>& stop, const Clock* clock,
                                  const std::function<uint64_t()>& consumed = nullptr,
                                  uint64_t max_ahead = 50000);

}  // namespace streamrec

#endif  // STREAMREC_SRC_KAFKA_PURCHASE_PRODUCER_H_
