// HeldDeliveryReports: a producer's delivery-report callback that stands between the producer
// and the real receiver (an OutboxPublisher) and hands the reports over when, in the order, and
// with the outcome a test chooses: acknowledgements out of sequence order and failed deliveries
// on demand, without depending on broker timing.
#ifndef STREAMREC_TESTS_TESTUTIL_DELIVERY_REPORTS_H_
#define STREAMREC_TESTS_TESTUTIL_DELIVERY_REPORTS_H_

#include <librdkafka/rdkafkacpp.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace streamrec::testing {

class HeldDeliveryReports : public RdKafka::DeliveryReportCb {
 public:
  struct Report {
    std::string key;         // the message key
    std::string value;       // the message value
    int32_t partition = -1;  // the output partition
    RdKafka::ErrorCode err = RdKafka::ERR_NO_ERROR;
    void* opaque = nullptr;  // the receiver's msg_opaque
  };

  // `receiver` gets the reports (not owned). With `hold`, reports wait for Release().
  HeldDeliveryReports(RdKafka::DeliveryReportCb* receiver, bool hold)
      : receiver_(receiver), hold_(hold) {}

  void dr_cb(RdKafka::Message& message) override;

  // Every report seen so far, in the order the producer delivered them (held or not).
  const std::vector<Report>& seen() const { return seen_; }
  // Reports waiting for Release.
  const std::vector<Report>& held() const { return held_; }
  // Hands over held report `index` with its outcome, or as a failure when `fail`, and forgets it.
  void Release(size_t index, bool fail = false);
  // Hands over the held report with message key `key` (the first one); false when none.
  bool ReleaseKey(const std::string& key, bool fail = false);
  // Hands over every held report, as it came, in the order it came.
  void ReleaseAll();

 private:
  void Forward(const Report& report, RdKafka::ErrorCode err);

  RdKafka::DeliveryReportCb* receiver_;
  bool hold_;
  std::vector<Report> seen_;
  std::vector<Report> held_;
};

}  // namespace streamrec::testing

#endif  // STREAMREC_TESTS_TESTUTIL_DELIVERY_REPORTS_H_
