// End-to-end: the streamrec binary replays a slice of the real UCI Online Retail data.
// Checks that the state digest is reproducible, and that a replay killed with SIGKILL at any
// point and run again ends in exactly the state of an uninterrupted run, with every list of the
// uninterrupted run published and no (customer, version) published with two contents.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <csignal>
#include <fstream>
#include <map>

#include "testutil/subprocess.h"
#include "testutil/test_util.h"

namespace streamrec {
namespace {

using testing::ProcessResult;
using testing::RunProcess;
using testing::StreamrecBinary;
using testing::TempDir;

constexpr int kSliceLines = 40000;

// The first kSliceLines events of the shared data set, written once per test process into a
// directory of its own (ctest runs test processes in parallel).
const std::string& Slice() {
  static const TempDir dir;
  static const std::string path = [] {
    std::string out = dir.File("online_retail_slice.csv");
    testing::WriteRetailSlice(out, kSliceLines);
    return out;
  }();
  return path;
}

struct Summary {
  uint64_t events = 0, invalid = 0, customers = 0, lists = 0;
  std::string digest;
};

Summary ReadSummary(const std::string& path) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  Summary s;
  EXPECT_EQ(parser.load(path).get(doc), simdjson::SUCCESS) << path;
  s.events = uint64_t(doc["events"]);
  s.invalid = uint64_t(doc["invalid"]);
  s.customers = uint64_t(doc["customers"]);
  s.lists = uint64_t(doc["lists_published"]);
  s.digest = std::string(std::string_view(doc["state_digest"]));
  return s;
}

// (customer_id, version) -> the whole JSON line; fails on a version published twice with
// different content.
std::map<std::pair<std::string, uint64_t>, std::string> ReadLists(const std::string& path,
                                                                  size_t* lines) {
  std::map<std::pair<std::string, uint64_t>, std::string> lists;
  simdjson::dom::parser parser;
  std::ifstream in(path);
  std::string line;
  *lines = 0;
  while (std::getline(in, line)) {
    ++*lines;
    simdjson::dom::element doc;
    EXPECT_EQ(parser.parse(line).get(doc), simdjson::SUCCESS) << line;
    std::string customer{std::string_view(doc["customer_id"])};
    uint64_t version = uint64_t(doc["version"]);
    // Every key of the documented shape is present.
    for (const char* key : {"as_of", "segment", "cluster", "group", "items"}) {
      EXPECT_EQ(doc[key].error(), simdjson::SUCCESS) << key << " missing in " << line;
    }
    auto [it, inserted] = lists.emplace(std::make_pair(customer, version), line);
    if (!inserted) {
      EXPECT_EQ(it->second, line) << "conflicting content for " << customer << " v" << version;
    }
  }
  return lists;
}

std::vector<std::string> ReplayArgs(const TempDir& dir, const std::string& name) {
  return {StreamrecBinary(), "replay",     "--input",        Slice(),
          "--state-dir",     dir.File(name + "-state"), "--recs-out", dir.File(name + ".jsonl"),
          "--summary-json",  dir.File(name + ".json"),  "--quiet"};
}

const std::map<std::string, std::string> kSmallBatches = {{"STREAMREC_PIPELINE__BATCH_SIZE", "2500"}};

// `replay --mode` publishes the lists `evaluate --mode` scores: no owned item in cross-sell (so no
// re-offer), re-offers leading in next-purchase; the state is the same either way.
TEST(ReplayEndToEndTest, ModeChoosesWhatListsMayHold) {
  TempDir dir;
  std::map<std::string, size_t> reoffers;
  std::map<std::string, std::string> digests;
  for (const std::string mode : {"cross-sell", "next-purchase"}) {
    std::vector<std::string> args = ReplayArgs(dir, mode);
    args.push_back("--mode");
    args.push_back(mode);
    ProcessResult r = RunProcess(args);
    ASSERT_TRUE(r.exited && r.exit_code == 0) << r.output;
    const std::string lines = testing::ReadFile(dir.File(mode + ".jsonl"));
    size_t n = 0;
    for (size_t at = lines.find("\"strategy\":\"reoffer\""); at != std::string::npos;
         at = lines.find("\"strategy\":\"reoffer\"", at + 1)) {
      ++n;
    }
    reoffers[mode] = n;
    digests[mode] = ReadSummary(dir.File(mode + ".json")).digest;
  }
  EXPECT_EQ(reoffers["cross-sell"], 0u);
  EXPECT_GT(reoffers["next-purchase"], 100u);
  EXPECT_EQ(digests["cross-sell"], digests["next-purchase"]);
  std::vector<std::string> bad = ReplayArgs(dir, "bad");
  bad.push_back("--mode");
  bad.push_back("upsell-everything");
  ProcessResult r = RunProcess(bad);
  EXPECT_TRUE(r.exited && r.exit_code != 0) << r.output;
}

TEST(ReplayEndToEndTest, DigestIsReproducible) {
  TempDir dir;
  ProcessResult a = RunProcess(ReplayArgs(dir, "a"), kSmallBatches);
  ASSERT_TRUE(a.exited && a.exit_code == 0) << a.output;
  ProcessResult b = RunProcess(ReplayArgs(dir, "b"), kSmallBatches);
  ASSERT_TRUE(b.exited && b.exit_code == 0) << b.output;
  Summary sa = ReadSummary(dir.File("a.json"));
  Summary sb = ReadSummary(dir.File("b.json"));
  EXPECT_EQ(sa.events, static_cast<uint64_t>(kSliceLines));
  EXPECT_EQ(sa.invalid, 0u);
  EXPECT_GT(sa.customers, 500u);
  EXPECT_GT(sa.lists, sa.customers);
  EXPECT_EQ(sa.digest.size(), 32u);
  EXPECT_EQ(sa.digest, sb.digest);
  size_t lines = 0;
  auto lists = ReadLists(dir.File("a.jsonl"), &lines);
  EXPECT_EQ(lines, sa.lists);
  EXPECT_EQ(lists.size(), sa.lists);
  EXPECT_NE(a.output.find("state digest"), std::string::npos) << a.output;
}

class KillAndResumeTest : public ::testing::TestWithParam<const char*> {};

TEST_P(KillAndResumeTest, ResumedRunEqualsUninterruptedRun) {
  TempDir dir;
  ProcessResult clean = RunProcess(ReplayArgs(dir, "clean"), kSmallBatches);
  ASSERT_TRUE(clean.exited && clean.exit_code == 0) << clean.output;

  auto env = kSmallBatches;
  env["STREAMREC_TEST_CRASH_AT"] = GetParam();
  ProcessResult killed = RunProcess(ReplayArgs(dir, "crash"), env);
  ASSERT_TRUE(killed.signaled) << "expected a SIGKILL at " << GetParam() << "\n" << killed.output;
  ASSERT_EQ(killed.signal, SIGKILL);
  ProcessResult resumed = RunProcess(ReplayArgs(dir, "crash"), kSmallBatches);
  ASSERT_TRUE(resumed.exited && resumed.exit_code == 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resum"), std::string::npos) << resumed.output;

  Summary a = ReadSummary(dir.File("clean.json"));
  Summary b = ReadSummary(dir.File("crash.json"));
  EXPECT_EQ(b.digest, a.digest);
  EXPECT_EQ(b.events, a.events) << "no event counted twice";
  EXPECT_EQ(b.invalid, a.invalid);
  EXPECT_EQ(b.customers, a.customers);
  EXPECT_EQ(b.lists, a.lists);

  size_t clean_lines = 0, crash_lines = 0;
  auto expected = ReadLists(dir.File("clean.jsonl"), &clean_lines);
  auto got = ReadLists(dir.File("crash.jsonl"), &crash_lines);  // also checks no conflicts
  EXPECT_GE(crash_lines, clean_lines);
  for (const auto& [key, line] : expected) {
    auto it = got.find(key);
    ASSERT_NE(it, got.end()) << "list " << key.first << " v" << key.second << " lost";
    EXPECT_EQ(it->second, line);
  }
  EXPECT_EQ(got.size(), expected.size());
}

// before batch 5 is applied / after batch 5 is committed but before its lists are published /
// in the middle of publishing.
INSTANTIATE_TEST_SUITE_P(CrashPoints, KillAndResumeTest,
                         ::testing::Values("batch:5", "commit:5", "publish:900"),
                         [](const auto& info) {
                           std::string name = info.param;
                           return name.substr(0, name.find(':'));
                         });

TEST(ReplayEndToEndTest, BadRecordsAreCountedAndSkipped) {
  TempDir dir;
  std::string input = dir.File("bad.csv");
  testing::WriteFile(input,
                     "customer_id,item_id,timestamp,quantity,unit_price,amount,channel\n"
                     "c1,A,2011-01-01 10:00:00,1,1.5,1.5,web\n"
                     "c2,B,not-a-time,1,1,1,web\n"
                     ",B,2011-01-01 10:00:00,1,1,1,web\n"
                     "c3,B,2011-01-01 10:00:00,abc,1,1,web\n"
                     "c4,\"unterminated,2011-01-01 10:00:00,1,1,1,web\n"
                     "c5,C,2011-01-02 10:00:00,1,,,app\n");
  ProcessResult r = RunProcess({StreamrecBinary(), "replay", "--input", input, "--state-dir",
                                dir.File("s"), "--summary-json", dir.File("s.json")});
  ASSERT_TRUE(r.exited && r.exit_code == 0) << r.output;
  Summary s = ReadSummary(dir.File("s.json"));
  EXPECT_EQ(s.events, 2u);
  EXPECT_EQ(s.invalid, 4u);
  EXPECT_NE(r.output.find("not-a-time"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("'abc'"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("file line 3"), std::string::npos) << r.output;
}

// With pseudonymised customer ids, the skipped records a replay prints show their reason only:
// their excerpts would show the MSISDN. The lists written (the product) keep it.
TEST(ReplayEndToEndTest, PseudonymizedLogsShowNoRecordExcerpt) {
  TempDir dir;
  std::string input = dir.File("telco.jsonl");
  testing::WriteFile(
      input,
      R"({"MSISDN":"6281234567890","PACKAGE_CODE":"NI-10GB-30D","BUY_DATE":"2026-01-15 08:30:00","CHANNEL":"USSD","PRICE":65000})"
      "\n"
      R"(["6281299999999","NI-10GB-30D"])"
      "\n"
      R"({"MSISDN":{"n":6281288888888},"PACKAGE_CODE":"NI-10GB-30D","BUY_DATE":"2026-01-15 09:00:00"})"
      "\n"
      R"({"MSISDN":"6281277777777","PACKAGE_CODE":"NI-10GB-30D","BUY_DATE":"not a date","CHANNEL":"app"})"
      "\n");
  testing::WriteFile(dir.File("key"), "000102030405060708090a0b0c0d0e0f\n");
  const std::vector<std::string> args = {
      StreamrecBinary(), "replay", "--config",
      std::string(STREAMREC_SOURCE_DIR) + "/config/telco-json.yaml", "--input", input,
      "--state-dir", dir.File("s"), "--recs-out", dir.File("r.jsonl")};
  ProcessResult r = RunProcess(args, {{"STREAMREC_LOG__PSEUDONYMIZE_CUSTOMER_IDS", "true"},
                                      {"STREAMREC_LOG__PSEUDONYM_KEY", "${file:" + dir.File("key") + "}"}});
  ASSERT_TRUE(r.exited && r.exit_code == 0) << r.output;
  for (const char* id : {"6281299999999", "6281288888888", "6281277777777", "6281234567890"}) {
    EXPECT_EQ(r.output.find(id), std::string::npos) << id << " in the log:\n" << r.output;
  }
  EXPECT_NE(r.output.find("JSON record is not an object (values withheld from the log)"),
            std::string::npos) << r.output;
  EXPECT_NE(r.output.find("bad customer_id (values withheld from the log)"), std::string::npos)
      << r.output;
  EXPECT_NE(testing::ReadFile(dir.File("r.jsonl")).find(R"("customer_id":"6281234567890")"),
            std::string::npos);
  // Without pseudonyms the same lines quote the records.
  ProcessResult plain = RunProcess({StreamrecBinary(), "replay", "--config",
                                    std::string(STREAMREC_SOURCE_DIR) + "/config/telco-json.yaml",
                                    "--input", input, "--state-dir", dir.File("s2")});
  ASSERT_TRUE(plain.exited && plain.exit_code == 0) << plain.output;
  EXPECT_NE(plain.output.find("6281299999999"), std::string::npos) << plain.output;
}

TEST(ReplayEndToEndTest, ConfigurationErrorsExitWithCode2) {
  TempDir dir;
  testing::WriteFile(dir.File("c.yaml"), "state:\n  block_cache_mb: huge\n");
  ProcessResult r = RunProcess({StreamrecBinary(), "replay", "--config", dir.File("c.yaml"),
                                "--input", Slice(), "--state-dir", dir.File("s")});
  EXPECT_TRUE(r.exited);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("state.block_cache_mb"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("huge"), std::string::npos) << r.output;

  ProcessResult env = RunProcess({StreamrecBinary(), "config", "--check", dir.File("c.yaml")},
                                 {{"STREAMREC_STATE__BLOCK_CACHE_MB", "64"}});
  EXPECT_EQ(env.exit_code, 2) << "a bad file stays bad under an override: " << env.output;

  ProcessResult header = RunProcess({StreamrecBinary(), "replay", "--input", Slice(), "--state-dir",
                                     dir.File("s2")},
                                    {{"STREAMREC_INPUT__FIELDS__CUSTOMER_ID", "MSISDN"}});
  EXPECT_EQ(header.exit_code, 2) << header.output;
  EXPECT_NE(header.output.find("MSISDN"), std::string::npos) << header.output;
}

TEST(ReplayEndToEndTest, PrintDefaultsIsValidConfiguration) {
  TempDir dir;
  ProcessResult defaults = RunProcess({StreamrecBinary(), "config", "--print-defaults"});
  ASSERT_EQ(defaults.exit_code, 0);
  testing::WriteFile(dir.File("d.yaml"), defaults.output);
  ProcessResult check = RunProcess({StreamrecBinary(), "config", "--check", dir.File("d.yaml")});
  EXPECT_EQ(check.exit_code, 0) << check.output;
}

TEST(ReplayEndToEndTest, TelcoJsonFeedWithOwnFieldNamesAndZone) {
  TempDir dir;
  std::string input = dir.File("telco.jsonl");
  testing::WriteFile(
      input,
      R"({"MSISDN":6281234567890,"PACKAGE_CODE":"NI-10GB-30D","BUY_DATE":"2026-01-15 08:30:00","CHANNEL":"USSD","PRICE":65000})"
      "\n"
      R"({"MSISDN":"6281234567890","PACKAGE_CODE":"SOC-2GB-7D","BUY_DATE":"2026-01-20 07:00:00","CHANNEL":"app"})"
      "\n"
      R"({"MSISDN":"6281200000001","PACKAGE_CODE":"NI-10GB-30D","BUY_DATE":"not a date","CHANNEL":"app"})"
      "\n");
  ProcessResult r = RunProcess({StreamrecBinary(), "replay", "--config",
                                std::string(STREAMREC_SOURCE_DIR) + "/config/telco-json.yaml",
                                "--input", input, "--state-dir", dir.File("s"), "--recs-out",
                                dir.File("r.jsonl"), "--summary-json", dir.File("s.json")});
  ASSERT_TRUE(r.exited && r.exit_code == 0) << r.output;
  Summary s = ReadSummary(dir.File("s.json"));
  EXPECT_EQ(s.events, 2u);
  EXPECT_EQ(s.invalid, 1u);
  EXPECT_EQ(s.customers, 1u);
  EXPECT_NE(r.output.find("BUY_DATE"), std::string::npos) << r.output;
  // 07:00 at UTC+07:00 is midnight UTC: the list's as_of is in UTC.
  std::string lists = testing::ReadFile(dir.File("r.jsonl"));
  EXPECT_NE(lists.find(R"("as_of":"2026-01-20T00:00:00Z")"), std::string::npos) << lists;
  EXPECT_NE(lists.find(R"("customer_id":"6281234567890")"), std::string::npos) << lists;
}

TEST(ReplayEndToEndTest, TelcoDemoRunsOnGeneratedFeed) {
  TempDir dir;
  ProcessResult r = RunProcess({StreamrecBinary(), "demo", "--events", "20000", "--customers",
                                "2000", "--work-dir", dir.path()},
                               {{"STREAMREC_METRICS__LISTEN", "127.0.0.1:0"},
                                {"STREAMREC_HTTP__LISTEN", "127.0.0.1:0"}});
  ASSERT_TRUE(r.exited && r.exit_code == 0) << r.output;
  EXPECT_NE(r.output.find("== segments"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("events           20000"), std::string::npos) << r.output;
  // Sample lists with items and their strategies. Which strategies the sampled customers get
  // depends on how the Kafka micro-batches were cut (one customer per segment is shown), so any
  // built-in strategy will do.
  const size_t sample = r.output.find("== sample lists");
  ASSERT_NE(sample, std::string::npos) << r.output;
  bool strategy_shown = false;
  for (const char* name : {"cooccurrence", "similar", "als", "popularity", "upsell", "reoffer"}) {
    strategy_shown |= r.output.find(std::string(" ") + name + " ", sample) != std::string::npos;
  }
  EXPECT_TRUE(strategy_shown) << r.output;
}

}  // namespace
}  // namespace streamrec
