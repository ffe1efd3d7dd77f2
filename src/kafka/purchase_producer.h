// PurchaseProducer: writes purchase events to a Kafka topic (demo feed, `streamrec bench`,
// tests), key = customer id, value = protobuf PurchaseEvent (or JSON).
#ifndef STREAMREC_SRC_KAFKA_PURCHASE_PRODUCER_H_
#define STREAMREC_SRC_KAFKA_PURCHASE_PRODUCER_H_

#include <librdkafka/rdkafkacpp.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "streamrec/clock.h"
#include "streamrec/decoder.h"
#include "streamrec/event.h"
#include "streamrec/status.h"

namespace streamrec {

class LineReader;  // file_io.h

// The record value Produce writes: `event` as streamrec.v1.PurchaseEvent, protobuf binary.
std::string EncodePurchaseEvent(const PurchaseEvent& event);

class PurchaseProducer {
 public:
  // `properties`: further librdkafka settings (SASL/SSL: the configuration's kafka.producer.*).
  static StatusOr<std::unique_ptr<PurchaseProducer>> Create(
      const std::string& brokers, const std::string& topic,
      const std::map<std::string, std::string>& properties = {});
  // Encodes `event` as streamrec.v1.PurchaseEvent and produces it (retries on a full queue).
  Status Produce(const PurchaseEvent& event);
  // Produces raw bytes (malformed records for tests; records encoded ahead, for benchmarks).
  // The bytes are copied: they need not outlive the call.
  Status ProduceRaw(std::string_view key, std::string_view value);
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

// The events of a canonical CSV feed (header first, as `streamrec generate` writes it; plain or
// gzip), in file order. Lines that do not decode are skipped and counted.
class CsvEventReader {
 public:
  // Errors: the file cannot be opened, is empty, or its header lacks a required column.
  static StatusOr<std::unique_ptr<CsvEventReader>> Open(const std::string& csv_path);
  ~CsvEventReader();
  CsvEventReader(const CsvEventReader&) = delete;
  CsvEventReader& operator=(const CsvEventReader&) = delete;

  // Decodes the next line that decodes into *event. False at the end of the file, or on a read
  // error (then status() says which).
  bool Next(PurchaseEvent* event);
  const Status& status() const;
  // Lines skipped so far because they do not decode.
  uint64_t skipped() const { return skipped_; }

 private:
  CsvEventReader() = default;
  std::unique_ptr<LineReader> reader_;
  std::unique_ptr<Decoder> decoder_;
  std::string line_;
  uint64_t skipped_ = 0;
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

// The same with every knob: what `streamrec produce` uses.
struct CsvFeedOptions {
  std::string brokers;   // bootstrap.servers
  std::string topic;
  std::string csv_path;  // canonical CSV with a header, plain or gzip
  double rate = 0;       // events/s; 0: as fast as possible
  // Further librdkafka producer settings (SASL/SSL), as kafka.producer.* in the configuration.
  std::map<std::string, std::string> producer_properties;
  // As above: production waits while more than `max_ahead` events ahead of `consumed()`.
  std::function<uint64_t()> consumed;
  uint64_t max_ahead = 50000;
  // Called every 1,000 lines and once at the end with the events produced so far and the lines
  // skipped because they do not decode (a feed with bad lines is produced without them).
  std::function<void(uint64_t produced, uint64_t skipped)> on_progress;
  // Waits at most this long for the final flush (every record acknowledged), ms.
  int flush_timeout_ms = 60000;
};
StatusOr<uint64_t> ProduceCsvFeed(const CsvFeedOptions& options, const std::atomic<bool>& stop,
                                  const Clock* clock);

// Waits until a broker of `brokers` answers and `topic` exists, for at most `timeout_ms`;
// returns the topic's partition count. Unavailable brokers give an IOError naming them and the
// last client error; a topic that never appears gives NotFound. Blocks in librdkafka's
// metadata requests (no sleeping).
StatusOr<int> WaitForTopic(const std::string& brokers, const std::string& topic, int timeout_ms,
                           const std::map<std::string, std::string>& properties = {});

}  // namespace streamrec

#endif  // STREAMREC_SRC_KAFKA_PURCHASE_PRODUCER_H_
