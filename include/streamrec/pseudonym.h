// Customer ids in logs. MSISDNs (and any customer id) are personal data: with
// log.pseudonymize_customer_ids every log line, and every Status message that may reach one, names
// a customer by a stable keyed pseudonym instead of the id. Outputs that are the product (the
// query API's answers, the output topics, files a command is asked to write) keep the real ids.
//
// The pseudonym is "c:" followed by 16 hex digits of SipHash-2-4 (Aumasson & Bernstein, "SipHash:
// a fast short-input PRF", 2012) of the id under a secret 128-bit key (log.pseudonym_key). A
// keyed PRF, not a plain hash: without the key nobody can hash the 10^10 possible MSISDNs to
// reverse a pseudonym, and with it an operator can compute the pseudonym of one id
// (`streamrec config --pseudonym ID`) to find that customer's log lines. The same key gives the
// same pseudonym in every process and every run; another key gives unrelated ones.
#ifndef STREAMREC_PSEUDONYM_H_
#define STREAMREC_PSEUDONYM_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "streamrec/status.h"

namespace streamrec {

using SipHashKey = std::array<uint8_t, 16>;

// SipHash-2-4 of `data` under `key` (the key's bytes in order, as in the paper's reference code).
uint64_t SipHash24(const SipHashKey& key, std::string_view data);

// Parses a key written as 32 hex digits (e.g. `openssl rand -hex 16`). The error names `what`
// (a configuration key) but never echoes the text, which is a secret.
StatusOr<SipHashKey> ParseSipHashKey(std::string_view hex, const std::string& what);

// "c:" + the 16 hex digits of SipHash24(key, customer_id).
std::string CustomerPseudonym(const SipHashKey& key, std::string_view customer_id);

struct LogConfig;  // config.h

// How log lines name customers: by their id (the default), or by their pseudonym. Cheap to copy;
// thread-safe. Every log line and Status message that names a customer builds the name here.
class CustomerIdsInLogs {
 public:
  // Real ids.
  CustomerIdsInLogs() = default;
  // Pseudonyms under `key`.
  explicit CustomerIdsInLogs(const SipHashKey& key);
  // From log.pseudonymize_customer_ids and log.pseudonym_key (validated by LoadConfig: a key is
  // there when pseudonyms are on).
  static CustomerIdsInLogs FromConfig(const LogConfig& config);

  // What a log line shows for the customer: "'17850'" (quoted) or "c:5a0f3c9e21d47b86".
  std::string Name(std::string_view customer_id) const;
  bool pseudonymized() const { return key_ != nullptr; }

 private:
  std::shared_ptr<const SipHashKey> key_;
};

}  // namespace streamrec

#endif  // STREAMREC_PSEUDONYM_H_
