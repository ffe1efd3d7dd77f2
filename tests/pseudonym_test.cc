// SipHash-2-4 against the reference vectors, and the customer-id pseudonyms built on it.
#include "streamrec/pseudonym.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <set>
#include <string>

#include "streamrec/config.h"
#include "streamrec/pipeline.h"
#include "testutil/test_util.h"

namespace streamrec {
namespace {

// The key of the SipHash paper's Appendix A and of the reference implementation's vectors:
// bytes 00 01 02 ... 0f.
SipHashKey PaperKey() {
  SipHashKey key;
  for (size_t i = 0; i < key.size(); ++i) key[i] = static_cast<uint8_t>(i);
  return key;
}

// The message of length n of the reference vectors: bytes 00 01 ... n-1.
std::string PaperMessage(size_t n) {
  std::string m;
  for (size_t i = 0; i < n; ++i) m.push_back(static_cast<char>(i));
  return m;
}

TEST(SipHashTest, ReferenceVectors) {
  // Appendix A of Aumasson & Bernstein, "SipHash: a fast short-input PRF" (2012): the 15-byte
  // message 00..0e gives a129ca6149be45e5.
  EXPECT_EQ(SipHash24(PaperKey(), PaperMessage(15)), 0xa129ca6149be45e5ULL);
  // vectors.h of the reference implementation (github.com/veorq/SipHash), output bytes read as a
  // little-endian word: every tail length 0..7 and whole words.
  EXPECT_EQ(SipHash24(PaperKey(), PaperMessage(0)), 0x726fdb47dd0e0e31ULL);
  EXPECT_EQ(SipHash24(PaperKey(), PaperMessage(1)), 0x74f839c593dc67fdULL);
  EXPECT_EQ(SipHash24(PaperKey(), PaperMessage(2)), 0x0d6c8009d9a94f5aULL);
  EXPECT_EQ(SipHash24(PaperKey(), PaperMessage(7)), 0xab0200f58b01d137ULL);
  EXPECT_EQ(SipHash24(PaperKey(), PaperMessage(8)), 0x93f5f5799a932462ULL);
  EXPECT_EQ(SipHash24(PaperKey(), PaperMessage(16)), 0x3f2acc7f57c29bdbULL);
  EXPECT_EQ(SipHash24(PaperKey(), PaperMessage(63)), 0x958a324ceb064572ULL);
}

TEST(SipHashTest, KeyParsing) {
  ASSERT_OK_AND_ASSIGN(key, ParseSipHashKey("000102030405060708090a0b0c0d0E0F", "k"));
  EXPECT_EQ(key, PaperKey());
  for (const std::string bad : {"", "00", "000102030405060708090a0b0c0d0e0f00",
                                "000102030405060708090a0b0c0d0e0g"}) {
    auto parsed = ParseSipHashKey(bad, "log.pseudonym_key");
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_NE(parsed.status().message().find("'log.pseudonym_key'"), std::string::npos);
    if (!bad.empty()) {
      EXPECT_EQ(parsed.status().message().find(bad), std::string::npos) << "the key was echoed";
    }
  }
}

TEST(PseudonymTest, StableKeyedAndShaped) {
  const SipHashKey key = PaperKey();
  SipHashKey other = key;
  other[0] ^= 1;
  const std::string p = CustomerPseudonym(key, "6281234567890");
  // "c:" and 16 lower-case hex digits: the SipHash output.
  ASSERT_EQ(p.size(), 18u);
  EXPECT_EQ(p.substr(0, 2), "c:");
  EXPECT_EQ(p.find_first_not_of("0123456789abcdef", 2), std::string::npos) << p;
  char expected[24];
  std::snprintf(expected, sizeof(expected), "c:%016llx",
                static_cast<unsigned long long>(SipHash24(key, "6281234567890")));
  EXPECT_EQ(p, expected);
  // Stable: the same id and key, the same pseudonym (here, in another process, another run).
  EXPECT_EQ(CustomerPseudonym(key, "6281234567890"), p);
  EXPECT_EQ(CustomerIdsInLogs(key).Name("6281234567890"), p);
  // Keyed: one bit of the key changes it; without the key it cannot be computed.
  EXPECT_NE(CustomerPseudonym(other, "6281234567890"), p);
  // Ids that differ in one digit get unrelated pseudonyms, and none contains the id.
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    const std::string id = "62812345" + std::to_string(10000 + i);
    const std::string q = CustomerPseudonym(key, id);
    EXPECT_EQ(q.find(id), std::string::npos);
    seen.insert(q);
  }
  EXPECT_EQ(seen.size(), 1000u);
}

TEST(PseudonymTest, LogNamesAreRealIdsUnlessConfigured) {
  EXPECT_FALSE(CustomerIdsInLogs().pseudonymized());
  EXPECT_EQ(CustomerIdsInLogs().Name("17850"), "'17850'");
  LogConfig config;
  config.pseudonym_key = "000102030405060708090a0b0c0d0e0f";
  EXPECT_EQ(CustomerIdsInLogs::FromConfig(config).Name("17850"), "'17850'") << "not switched on";
  config.pseudonymize_customer_ids = true;
  const CustomerIdsInLogs ids = CustomerIdsInLogs::FromConfig(config);
  EXPECT_TRUE(ids.pseudonymized());
  EXPECT_EQ(ids.Name("17850"), CustomerPseudonym(PaperKey(), "17850"));
  const CustomerIdsInLogs copy = ids;  // copies share the key
  EXPECT_EQ(copy.Name("17850"), ids.Name("17850"));
}

TEST(PseudonymTest, InvalidRecordsInLogsKeepOnlyTheReason) {
  const Status quoted = Status::InvalidArgument(
      "JSON record is not an object: '[\"6281234567890\",\"NI-10GB\"]'");
  const Status value = Status::InvalidArgument("bad customer_id '{\"msisdn\":6281234567890}' "
                                               "(field 'MSISDN'): not a string or a number");
  EXPECT_EQ(InvalidRecordForLog(quoted, CustomerIdsInLogs()), quoted.message());
  SipHashKey key{};
  const CustomerIdsInLogs ids(key);
  EXPECT_EQ(InvalidRecordForLog(quoted, ids),
            "JSON record is not an object (values withheld from the log)");
  EXPECT_EQ(InvalidRecordForLog(value, ids), "bad customer_id (values withheld from the log)");
}

}  // namespace
}  // namespace streamrec
