#include "streamrec/pseudonym.h"

#include <bit>
#include <cstdio>

#include "streamrec/config.h"

namespace streamrec {

namespace {

uint64_t LoadLittleEndian64(const uint8_t* p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}

struct SipState {
  uint64_t v0, v1, v2, v3;

  void Round() {
    v0 += v1;
    v1 = std::rotl(v1, 13);
    v1 ^= v0;
    v0 = std::rotl(v0, 32);
    v2 += v3;
    v3 = std::rotl(v3, 16);
    v3 ^= v2;
    v0 += v3;
    v3 = std::rotl(v3, 21);
    v3 ^= v0;
    v2 += v1;
    v1 = std::rotl(v1, 17);
    v1 ^= v2;
    v2 = std::rotl(v2, 32);
  }

  // One message word through c = 2 rounds.
  void Compress(uint64_t m) {
    v3 ^= m;
    Round();
    Round();
    v0 ^= m;
  }
};

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

uint64_t SipHash24(const SipHashKey& key, std::string_view data) {
  const uint64_t k0 = LoadLittleEndian64(key.data(), 8);
  const uint64_t k1 = LoadLittleEndian64(key.data() + 8, 8);
  SipState s{k0 ^ 0x736f6d6570736575ULL, k1 ^ 0x646f72616e646f6dULL, k0 ^ 0x6c7967656e657261ULL,
             k1 ^ 0x7465646279746573ULL};
  const auto* p = reinterpret_cast<const uint8_t*>(data.data());
  const size_t n = data.size();
  const size_t whole = n - n % 8;
  for (size_t i = 0; i < whole; i += 8) s.Compress(LoadLittleEndian64(p + i, 8));
  // The last word: the remaining bytes, and the length (mod 256) in the top byte.
  s.Compress(LoadLittleEndian64(p + whole, n - whole) | (static_cast<uint64_t>(n & 0xff) << 56));
  // Finalization: d = 4 rounds.
  s.v2 ^= 0xff;
  for (int i = 0; i < 4; ++i) s.Round();
  return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

StatusOr<SipHashKey> ParseSipHashKey(std::string_view hex, const std::string& what) {
  SipHashKey key{};
  bool ok = hex.size() == 2 * key.size();
  for (size_t i = 0; ok && i < key.size(); ++i) {
    const int hi = HexDigit(hex[2 * i]);
    const int lo = HexDigit(hex[2 * i + 1]);
    ok = hi >= 0 && lo >= 0;
    key[i] = static_cast<uint8_t>(hi * 16 + lo);
  }
  if (!ok) {
    return Status::InvalidArgument(
        "configuration key '" + what + "': expected 32 hex digits (a 128-bit key, e.g. from "
        "`openssl rand -hex 16`), got " + std::to_string(hex.size()) +
        " characters that are not one (the value is a secret and not shown)");
  }
  return key;
}

std::string CustomerPseudonym(const SipHashKey& key, std::string_view customer_id) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "c:%016llx",
                static_cast<unsigned long long>(SipHash24(key, customer_id)));
  return buf;
}

CustomerIdsInLogs::CustomerIdsInLogs(const SipHashKey& key)
    : key_(std::make_shared<const SipHashKey>(key)) {}

CustomerIdsInLogs CustomerIdsInLogs::FromConfig(const LogConfig& config) {
  if (!config.pseudonymize_customer_ids) return CustomerIdsInLogs();
  auto key = ParseSipHashKey(config.pseudonym_key, "log.pseudonym_key");
  // LoadConfig refuses a bad key; a Config built by hand with one gets pseudonyms under an
  // all-zero key rather than real ids in the logs.
  return CustomerIdsInLogs(key.ok() ? *key : SipHashKey{});
}

std::string CustomerIdsInLogs::Name(std::string_view customer_id) const {
  if (key_ != nullptr) return CustomerPseudonym(*key_, customer_id);
  std::string quoted = "'";
  quoted.append(customer_id);
  quoted += "'";
  return quoted;
}

}  // namespace streamrec
