#include "testutil/delivery_reports.h"

#include <algorithm>

namespace streamrec::testing {

namespace {

// A delivery report made up by the test: what a receiver reads of one (the opaque, the outcome),
// nothing else.
class ReportMessage : public RdKafka::Message {
 public:
  ReportMessage(void* opaque, RdKafka::ErrorCode err, std::string key)
      : opaque_(opaque), err_(err), key_(std::move(key)) {}
  std::string errstr() const override { return RdKafka::err2str(err_); }
  RdKafka::ErrorCode err() const override { return err_; }
  RdKafka::Topic* topic() const override { return nullptr; }
  std::string topic_name() const override { return ""; }
  int32_t partition() const override { return RdKafka::Topic::PARTITION_UA; }
  void* payload() const override { return nullptr; }
  size_t len() const override { return 0; }
  const std::string* key() const override { return &key_; }
  const void* key_pointer() const override { return key_.data(); }
  size_t key_len() const override { return key_.size(); }
  int64_t offset() const override { return -1; }
  RdKafka::MessageTimestamp timestamp() const override {
    RdKafka::MessageTimestamp ts;
    ts.type = RdKafka::MessageTimestamp::MSG_TIMESTAMP_NOT_AVAILABLE;
    ts.timestamp = 0;
    return ts;
  }
  void* msg_opaque() const override { return opaque_; }
  int64_t latency() const override { return 0; }
  struct rd_kafka_message_s* c_ptr() override {
    return nullptr;
  }
  Status status() const override {
    return err_ == RdKafka::ERR_NO_ERROR ? MSG_STATUS_PERSISTED : MSG_STATUS_NOT_PERSISTED;
  }
  RdKafka::Headers* headers() override { return nullptr; }
  RdKafka::Headers* headers(RdKafka::ErrorCode* err) override {
    *err = RdKafka::ERR__NOENT;
    return nullptr;
  }
  int32_t broker_id() const override { return -1; }

 private:
  void* opaque_;
  RdKafka::ErrorCode err_;
  std::string key_;
};

}  // namespace

void HeldDeliveryReports::dr_cb(RdKafka::Message& message) {
  Report report;
  if (message.key() != nullptr) report.key = *message.key();
  report.value.assign(static_cast<const char*>(message.payload()), message.len());
  report.partition = message.partition();
  report.err = message.err();
  report.opaque = message.msg_opaque();
  seen_.push_back(report);
  if (hold_) {
    held_.push_back(std::move(report));
  } else {
    Forward(report, report.err);
  }
}

void HeldDeliveryReports::Release(size_t index, bool fail) {
  Report report = std::move(held_.at(index));
  held_.erase(held_.begin() + static_cast<std::ptrdiff_t>(index));
  Forward(report, fail ? RdKafka::ERR__MSG_TIMED_OUT : report.err);
}

bool HeldDeliveryReports::ReleaseKey(const std::string& key, bool fail) {
  auto it = std::find_if(held_.begin(), held_.end(), [&](const Report& r) { return r.key == key; });
  if (it == held_.end()) return false;
  Release(static_cast<size_t>(it - held_.begin()), fail);
  return true;
}

void HeldDeliveryReports::ReleaseAll() {
  while (!held_.empty()) Release(0);
}

void HeldDeliveryReports::Forward(const Report& report, RdKafka::ErrorCode err) {
  ReportMessage message(report.opaque, err, report.key);
  receiver_->dr_cb(message);
}

}  // namespace streamrec::testing
